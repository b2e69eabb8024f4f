"""A published row's cuDNN (its library_stack, or a network row's sw_stack or framework) picks
the release of cuDNN's kernels that costs it, and its CUDA (the library_stack, or a network
row's sw_stack, framework or GPU description) the release of cuBLAS's."""
from validation.calibrate import published_gpu as pg
from validation.calibrate import published_kernels as pk

HEADER = ("row_id,network,gpu,framework,sw_stack,precision,batch_per_gpu,"
          "throughput_img_s\n")


def test_a_network_row_carries_the_cudnn_it_names(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text(HEADER
                    + "A,VGG-19,V100,Torch7 (cudnn.torch),cuDNN 7.0.04,FP32,16,100\n"
                    + "B,VGG-19,V100,cuDNN R4 fp32 (Torch),,FP32,16,100\n"
                    + "C,ResNet-50 v1.5,V100,PyTorch,,FP32,16,100\n")
    rows = {r.row_id: r for r in pg.read_network_rows(str(path)).rows}
    assert rows["A"].cudnn == (7, 0, 4)
    assert rows["B"].cudnn == (4, 0, 0)
    assert rows["C"].cudnn is None


def test_the_cudnn_a_row_names_moves_its_convolutions(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "A,VGG-19,V100,Torch7 (cudnn.torch),cuDNN 7.0.04,FP32,2,100\n"
                    + "B,VGG-19,V100,Torch7 (cudnn.torch),cuDNN 7.6.2,FP32,2,100\n")
    old, new = pg.read_network_rows(str(path)).rows
    # cuDNN 7.0's kernels pay twice 7.6's fill: a batch of 2 feels it
    assert pg.simulate_row(old) < pg.simulate_row(new)


def test_a_kernel_row_carries_the_cuda_and_cudnn_of_its_library_stack():
    table = pk.read_kernel_rows(pg.PUBLISHED_DIR + "/kernels.csv")
    by_gpu = {(r.gpu, r.kind): r for r in table.rows}
    assert by_gpu[("gtx1080ti", "conv2d")].cudnn == (6, 0, 21)
    assert by_gpu[("gtx1080ti", "conv2d")].cuda == (8, 0, 88)
    assert by_gpu[("v100", "gemm")].cudnn == (7, 6, 2)


def test_a_network_row_carries_the_cuda_it_names(tmp_path):
    """jcjohnson/cnn-benchmarks names the CUDA beside the host in its GPU description; the
    software stack, where it names one, comes first."""
    path = tmp_path / "rows.csv"
    path.write_text("row_id,network,gpu,gpu_variant,framework,sw_stack,precision,"
                    "batch_per_gpu,throughput_img_s\n"
                    'A,AlexNet,Titan X (Maxwell),"Titan X 12GB (E5-2630 v3, CUDA 8.0 RC)",'
                    "Torch7 (cudnn.torch),cuDNN 5.1.05,FP32,16,700\n"
                    'B,AlexNet,Titan X (Maxwell),"Titan X 12GB (CUDA 8.0)",Torch7 (cudnn.torch),'
                    '"CUDA 7.5, cuDNN 5.1.05",FP32,16,700\n'
                    "C,AlexNet,Titan X (Maxwell),Titan X 12GB,Torch7 (cudnn.torch),"
                    "cuDNN 5.1.05,FP32,16,700\n")
    rows = {r.row_id: r for r in pg.read_network_rows(str(path)).rows}
    assert (rows["A"].cuda, rows["B"].cuda, rows["C"].cuda) == ((8, 0, 0), (7, 5, 0), None)
    # CUDA 8.0's cuBLAS runs the classifier's 16-column products as its gemv-like kernel,
    # where 7.5's (the Maxwell tables' default) pads them into 64-wide tiles
    assert pg.simulate_row(rows["A"]) > pg.simulate_row(rows["B"])
    assert pg.simulate_row(rows["C"]) == pg.simulate_row(rows["B"])
