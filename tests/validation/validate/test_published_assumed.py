"""validate --published says per row what reading it assumed where the row does not say, so
a reader sees why a figure is what it is; a file it cannot read is one error line, exit 2."""
from simulator.cli import main

ROWS = """row_id,network,gpu,framework,framework_version,precision,batch_per_gpu,throughput_img_s
B1,BERT-base,A100,PyTorch,2.1,AMP,32,900
R1,ResNet-50,V100,TensorFlow,1.14,FP32,64,300
R2,resnet50,V100,Chainer,,FP32,64,300
"""


def test_the_report_says_what_each_row_assumed(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text(ROWS)
    assert main(["validate", "--published", str(path)]) == 0
    out = capsys.readouterr().out
    assumed = out[out.index("how the rows run"):]
    assert ("host pytorch; seq_len 128 (the zoo's default: the row states none); fine-tuning: "
            "the zoo's classifier head on the pooled first token:\n    B1") in assumed
    assert ("host tensorflow; ResNet v1 (no v1/v1.5 in the label: tensorflow's ResNet); "
            "layout nchw (tensorflow's default in fp32):\n    R1") in assumed
    assert "host pytorch (framework 'Chainer' names none the model describes)" in assumed
    assert " R1     resnet50_v1 " in out


def test_a_file_without_a_throughput_column_exits_2(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text("network,gpu,precision,batch_per_gpu\nResNet-50,V100,AMP,256\n")
    assert main(["validate", "--published", str(path)]) == 2
    err = capsys.readouterr().err
    assert "no column throughput_img_s or iter_time_ms" in err and err.count("\n") == 1
