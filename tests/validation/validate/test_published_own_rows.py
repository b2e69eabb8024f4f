"""A user's own published-style CSV (validate --published mine.csv) with GPUs and networks
named as people write them: a GPU name (with its gpu_variant) resolves to the one catalog part
it names, a network spelt with other case or separators to that zoo network
(validation/calibrate/published_names.py); a row that names none, or several, is skipped with
the parts or networks it may mean, never mapped silently."""
from __future__ import annotations

from validation.calibrate.published_gpu import read_network_rows

ROWS = """network,gpu,gpu_variant,precision,batch_per_gpu,throughput_img_s
resnet50,H100 SXM5 80GB,,AMP,256,3000
resnet50,NVIDIA A100 80GB PCIe,,AMP,256,2300
BERT-base,v100,,FP32,32,100
ViT-B/16,a100,,AMP,64,900
resnet50,TPUv9,,AMP,64,900
resnet50,h100,,AMP,256,3000
resnet50,A100,DGX A100 80GB,AMP,256,2500
resnet50,V100,DGX-2 V100 SXM3 32GB,FP32,256,380
resnet50,Titan X,,FP32,64,100
resnet50,RTX 3090 Ti,,FP32,64,300
resnet50,A100,PCIe 4.0 host; A100 SXM4 80GB,AMP,256,2500
GPT2 huge,h100,,AMP,8,100
"""


def test_rows_resolve_their_gpu_or_name_what_they_may_mean(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(ROWS)
    table = read_network_rows(str(path))
    reasons = {s.row_id: s.reason for s in table.skipped}
    gpus = {r.row_id: r.gpu for r in table.rows}
    assert gpus == {"row 2": "h100", "row 3": "a100-pcie-80gb", "row 4": "v100",
                    "row 5": "a100", "row 7": "h100", "row 8": "a100-80gb",
                    # same chip and clocks as the 16 GB part: scored as one GPU
                    "row 9": "v100"}
    networks = {r.row_id: r.network for r in table.rows}
    assert (networks["row 4"], networks["row 5"]) == ("bert_base", "vit_b_16")
    assert "network 'GPT2 huge' is not in the zoo (did you mean 'gpt2'?)" in reasons["row 13"]
    assert "is not in the catalog" in reasons["row 6"] and "did you mean" not in reasons["row 6"]
    assert "could be any of titan-x-maxwell" in reasons["row 10"]
    assert "(did you mean 'rtx3090' or" in reasons["row 11"]
    assert "states two form factors" in reasons["row 12"]
    assert all("dnnsim hardware --kind gpu" in reasons[r] for r in ("row 6", "row 10"))
