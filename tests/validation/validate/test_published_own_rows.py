"""A user's own published-style CSV (validate --published mine.csv) with GPUs and networks
named as people write them: each skipped row names the catalog or zoo name it may mean, and
never maps it silently."""
from __future__ import annotations

from validation.calibrate.published_gpu import read_network_rows

ROWS = """network,gpu,precision,batch_per_gpu,throughput_img_s
resnet50,H100 SXM5 80GB,AMP,256,3000
resnet50,NVIDIA A100 80GB PCIe,AMP,256,2300
BERT-base,v100,FP32,32,100
ViT-B/16,a100,AMP,64,900
resnet50,TPUv9,AMP,64,900
resnet50,h100,AMP,256,3000
"""


def test_skipped_rows_name_what_they_may_mean(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(ROWS)
    table = read_network_rows(str(path))
    reasons = {s.row_id: s.reason for s in table.skipped}
    assert "(did you mean 'h100' or 'h100-pcie'?)" in reasons["row 2"]
    assert "(did you mean 'a100' or 'a100-80gb' or 'a100-pcie'?)" in reasons["row 3"]
    assert "a SKU goes in gpu_variant" in reasons["row 3"]
    assert "(did you mean 'bert_base'?)" in reasons["row 4"]
    assert "(did you mean 'vit_b_16'?)" in reasons["row 5"]
    assert "did you mean" not in reasons["row 6"]
    assert len(table.rows) == 1   # only the row named as the catalog names it
