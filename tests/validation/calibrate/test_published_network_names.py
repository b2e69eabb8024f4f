"""Published rows are mapped onto zoo networks by the harness that ran them (the label each
harness uses), never by their error: jcjohnson/cnn-benchmarks' AlexNet is Caffe's two-tower
model, soumith/convnet-benchmarks' GoogLeNet v1 has no LRN, and a zoo name is itself."""
from validation.calibrate import published_gpu as pg

# row id -> zoo network, for the committed rows of each harness
EXPECTED = {
    "S194": "alexnet_bvlc", "S203": "alexnet_bvlc", "S213": "alexnet_bvlc",
    "S221": "alexnet_bvlc", "S232": "alexnet_bvlc", "S242": "alexnet_bvlc",
    "S195": "googlenet_v1", "S204": "googlenet_v1", "S222": "googlenet_v1",
    "S231": "googlenet_v1", "S233": "googlenet_v1", "S243": "googlenet_v1",
    "S276": "googlenet_v1_nolrn", "S277": "googlenet_v1_nolrn", "S279": "googlenet_v1_nolrn",
    "S264": "alexnet",
}


def test_each_harness_row_runs_the_network_its_harness_ran():
    table = pg.read_network_rows(f"{pg.PUBLISHED_DIR}/single_gpu.csv")
    networks = {r.row_id: r.network for r in table.rows}
    assert {rid: networks.get(rid) for rid in EXPECTED} == EXPECTED
    skipped = {s.row_id for s in table.skipped}
    assert not skipped & set(EXPECTED)


def test_a_zoo_name_is_that_network_and_a_label_is_its_harnesses(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("row_id,network,gpu,precision,batch_per_gpu,throughput_img_s\n"
                    "a,alexnet,V100,FP32,16,100\nb,AlexNet,V100,FP32,16,100\n"
                    "c,googlenet,V100,FP32,16,100\nd,GoogLeNet v1,V100,FP32,16,100\n")
    table = pg.read_network_rows(str(path))
    assert [r.network for r in table.rows] == ["alexnet", "alexnet_bvlc", "googlenet",
                                               "googlenet_v1_nolrn"]
