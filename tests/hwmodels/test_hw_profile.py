
import pytest

from hwmodels import HardwareError, Profile, catalog, model_for

META = {"device_kind": "cpu", "device_name": "xeon-avx512-2c", "machine": "x86_64",
        "processor": "test \"cpu\"\tø", "threads": 2, "torch_version": "2.1", "date": "2024-01-01"}


def conv_points(model, conv_op, batches=(1, 4, 16)):
    """Measured-looking points: the curve's time times 1.3, at three conv sizes."""
    ops = [conv_op(b) for b in batches]
    return ops, [[op.flops, float(op.bytes_moved), 1.3 * model.curve_time_s(op)] for op in ops]


def make_profile(conv_op, **extra):
    base = model_for("xeon-avx512-2c")
    ops, pts = conv_points(base, conv_op)
    return ops, Profile(meta=dict(META), kinds={"conv2d": pts}, **extra)


def test_save_load_round_trip_is_byte_identical(tmp_path, conv_op):
    _, prof = make_profile(conv_op, efficiency={"conv": 0.55, "elementwise": 0.25})
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    prof.save(a)
    again = Profile.load(a)
    again.save(b)
    assert a.read_bytes() == b.read_bytes()
    assert again == prof and again.meta["processor"] == META["processor"]


def test_exact_at_measured_points_and_monotone_between(conv_op):
    ops, prof = make_profile(conv_op)
    m = model_for("xeon-avx512-2c", profile=prof)
    for op, (_, _, t) in zip(ops, prof.points("conv2d"), strict=True):
        assert m.op_time_s(op) == t
    times = [m.op_time_s(conv_op(b)) for b in range(1, 17)]
    assert times == sorted(times)
    assert m.profile_hits["conv2d"] == 3 + 16 and not m.fallbacks


def test_extrapolation_keeps_the_fitted_law(conv_op):
    """Points that follow time = a + b*FLOPs exactly: unmeasured sizes, inside or far beyond
    the measured range, are predicted by the same law."""
    ops = [conv_op(b) for b in (1, 4, 16)]
    def law(op):
        return 2e-5 + op.flops / 5e10
    prof = Profile(meta=dict(META), kinds={"conv2d": [[op.flops, float(op.bytes_moved), law(op)]
                                                      for op in ops]})
    m = model_for("xeon-avx512-2c", profile=prof)
    for batch in (2, 9, 64, 256):
        op = conv_op(batch)
        assert m.op_time_s(op) == pytest.approx(law(op), rel=1e-6)


def test_fallback_counting(conv_relu_ops):
    ops = conv_relu_ops(batch=1, channels=16, size=8)
    prof = Profile(meta=dict(META), kinds={"relu": [[1e3, 8e3, 1e-5], [1e6, 8e6, 1e-3]]})
    m = model_for("xeon-avx512-2c", profile=prof)
    for op in ops.values():
        m.op_time_s(op)
    assert m.fallbacks == {"conv2d": 1}      # views are not costed at all
    assert m.profile_hits == {"relu": 1}
    m.reset_counters()
    assert not m.fallbacks and not m.profile_hits
    plain = model_for("xeon-avx512-2c")
    plain.op_time_s(ops["conv2d"])
    assert not plain.fallbacks               # no profile: the curve is the model, not a fallback


def test_profile_efficiency_replaces_spec(conv_relu_ops):
    conv = conv_relu_ops(batch=8, channels=128, size=28)["conv2d"]
    prof = Profile(meta=dict(META), kinds={}, efficiency={"conv": 0.35})
    fitted = model_for("xeon-avx512-2c", profile=prof)
    assert fitted.max_efficiency("conv") == 0.35
    assert fitted.op_time_s(conv) > model_for("xeon-avx512-2c").op_time_s(conv)
    assert fitted.fallbacks == {"conv2d": 1}


def test_wrong_device_kind_raises():
    prof = Profile(meta={"device_kind": "gpu"}, kinds={})
    with pytest.raises(HardwareError, match="profile is for a gpu.*is a cpu"):
        model_for("skylake-x-6c", profile=prof)


def test_model_for_accepts_a_profile_path(tmp_path, conv_op):
    _, prof = make_profile(conv_op)
    prof.save(tmp_path / "p.toml")
    m = model_for(catalog.device("xeon-avx512-2c"), profile=tmp_path / "p.toml")
    assert m.profile.covers("conv2d") and not m.profile.covers("relu")


@pytest.mark.parametrize("text, pattern", [
    ("[meta]\ndevice_kind = 'tpu'\n", "device_kind must be one of"),
    ("[kinds.relu]\npoints = [[1.0, 1.0, 1.0]]\n", "missing \\[meta\\]"),
    ("[meta]\ndevice_kind = 'cpu'\ncolour = 'red'\n", "unknown field 'colour'"),
    ("[meta]\ndevice_kind = 'cpu'\nthreads = '2'\n", "threads must be an integer"),
    ("[meta]\ndevice_kind = 'cpu'\nmax_rounds = 2.5\n", "max_rounds must be an integer"),
    ("[meta]\ndevice_kind = 'cpu'\n[kinds.softsign]\npoints = [[1.0, 1.0, 1.0]]\n",
     "unknown op kind"),
    ("[meta]\ndevice_kind = 'cpu'\n[kinds.relu]\npoints = [[1.0, 1.0, -1.0]]\n", "point 0"),
    ("[meta]\ndevice_kind = 'cpu'\n[kinds.relu]\npoints = [[1.0, 1.0]]\n", "point 0"),
    ("[meta]\ndevice_kind = 'cpu'\n[kinds.relu]\npoints = []\n", "non-empty"),
    ("[meta]\ndevice_kind = 'cpu'\n[kinds.conv2d]\n"
     "points = [[1.0, 1.0, 1.0, 2, 2, 2, 1, 9, 1, 4], [1.0, 1.0, 1.0]]\n", "share one layout"),
    ("[meta]\ndevice_kind = 'cpu'\n[kinds.relu]\n"
     "points = [[1.0, 1.0, 1.0, 2, 2, 2, 1, 1, 1, 1]]\n",
     r"relu\]: point 0 must be .* or \[flops, bytes, time_s, planes, pixels\]"),
    ("[meta]\ndevice_kind = 'cpu'\n[kinds.conv2d]\n"
     "points = [[1.0, 1.0, 1.0, 2, 2.5, 2, 1, 1, 1, 1]]\n", "must be integers"),
    ("[meta]\ndevice_kind = 'cpu'\n[kinds.relu]\npoints = [[1.0, 1.0, 1.0, 4, 0]]\n",
     "planes and pixels must be integers >= 1"),
    ("[meta]\ndevice_kind = 'cpu'\n[efficiency]\nconv = 2.0\n", "conv must be in"),
    ("[meta\n", "not valid TOML"),
])
def test_malformed_profile_names_the_file(tmp_path, text, pattern):
    path = tmp_path / "bad_profile.toml"
    path.write_text(text)
    with pytest.raises(HardwareError, match=pattern) as info:
        Profile.load(path)
    assert "bad_profile.toml" in str(info.value)


def test_missing_profile_file(tmp_path):
    with pytest.raises(HardwareError, match="absent.toml: cannot read profile"):
        Profile.load(tmp_path / "absent.toml")


def test_points_sorted_and_fit_is_non_negative():
    from hwmodels.profile_fit import WorkPredictor, fit_nonnegative
    prof = Profile(meta=dict(META), kinds={"relu": [[1e6, 8e6, 1e-3], [1e3, 8e3, 1e-5]]})
    assert prof.points("relu")[0][0] == 1e3
    # times that fall with size would need a negative coefficient: it is clamped at zero
    coef = fit_nonnegative([(1e3, 8e3, 3e-3), (1e6, 8e6, 1e-3), (1e5, 8e5, 2e-3)])
    assert all(c >= 0 for c in coef)
    pred = WorkPredictor([(1e3, 8e3, 1e-5), (1e6, 8e6, 1e-3), (1e4, 8e4, 2e-5)])
    assert pred.predict_s(1e3, 8e3) == 1e-5            # measured: exact
    between = pred.predict_s(1e5, 8e5)
    assert 2e-5 < between < 1e-3                       # unmeasured: between its neighbours


def test_costs_the_points_cannot_tell_apart_stay_on_the_work():
    """Points all of one-pixel planes make planes, values, FLOPs and bytes proportional: the
    fit must not put the cost on planes (and predict a 1,000-pixel plane as cheap as one)."""
    from hwmodels.profile_fit import fit_nonnegative
    points = [(float(n), 20.0 * n, 5e-6 + 2e-9 * n, n, 1) for n in (256, 1024, 4096, 16384)]
    overhead, per_flop, per_byte, per_plane, per_value = fit_nonnegative(points)
    assert per_plane == 0.0
    wide = overhead + per_flop * 1024 * 1024 + per_byte * 20 * 1024 * 1024 \
        + per_value * 1024 * 1024
    assert wide == pytest.approx(5e-6 + 2e-9 * 1024 * 1024, rel=1e-3)


def _gemm_points(rate, halves, overhead_s, shapes):
    """Points of a known GEMM model: time = overhead + flops / (rate * prod d / (d + h))."""
    pts = []
    for m, n, k, g, *rest in shapes:
        flops = 2.0 * m * n * k * g
        fill = 1.0
        for d, h in zip((m, n, k), halves, strict=True):
            fill *= d / (d + h)
        pts.append((flops, 4.0 * (m * k + k * n + m * n) * g,
                    overhead_s + flops / (rate * fill), m, n, k, g, *(rest or (1, 1, 1))))
    return pts


def test_gemm_predictor_recovers_a_known_model_on_unseen_shapes():
    from hwmodels.profile_fit import predictor_for
    dims = (8, 32, 128, 512, 2048)
    seen = [(m, n, k, 1) for m in dims for n in dims[:4] for k in dims[1:]]
    pred = predictor_for(_gemm_points(5e10, (64, 16, 32), 5e-6, seen))
    for m, n, k in ((100, 48, 300), (4000, 8, 40), (16, 256, 1500)):
        (f, b, want, *shape), = _gemm_points(5e10, (64, 16, 32), 5e-6, [(m, n, k, 1)])
        assert pred.predict_s(f, b, tuple(shape)) == pytest.approx(want, rel=0.02)
    f, b, t, *shape = seen_point = _gemm_points(5e10, (64, 16, 32), 5e-6, seen[:1])[0]
    assert pred.predict_s(f, b, tuple(shape)) == t      # measured: exact
    assert seen_point[3:] == seen[0] + (1, 1, 1)


def test_gemm_predictor_is_never_faster_than_its_fastest_measured_shape():
    """Fill curves rise towards a rate no measured GEMM reached; a much larger GEMM (whose
    operands leave the caches, on a real machine) is predicted at the fastest measured rate,
    not at the curve's asymptote."""
    from hwmodels.profile_fit import predictor_for
    dims = (8, 32, 128, 256)
    pts = _gemm_points(2e11, (256, 256, 256), 1e-6, [(m, n, k, 1) for m in dims for n in dims
                                                     for k in dims])
    fastest = max(f / t for f, _, t, *_ in pts)
    assert fastest < 0.5 * 2e11                          # the asymptote is never measured
    (f, b, _, *shape), = _gemm_points(2e11, (256, 256, 256), 1e-6, [(8192, 4096, 4096, 1)])
    assert predictor_for(pts).predict_s(f, b, tuple(shape)) == pytest.approx(f / fastest)


def test_gemm_predictor_fits_grouped_kernels_apart():
    from hwmodels.profile_fit import predictor_for
    dense = [(m, n, k, 1) for m in (64, 1024, 16384) for n in (16, 64, 256) for k in (27, 288)]
    depthwise = [(m, 1, 9, g, 9, 1, m // 4)
                 for m in (256, 1024, 4096, 16384) for g in (16, 64, 256)]
    pts = (_gemm_points(5e10, (32, 16, 32), 2e-6, dense)
           + _gemm_points(2e9, (64, 0.5, 0.5), 2e-6, depthwise))
    pred = predictor_for(pts)
    (f, b, want, *shape), = _gemm_points(2e9, (64, 0.5, 0.5), 2e-6, [(2048, 1, 9, 128, 9, 1, 16)])
    assert pred.predict_s(f, b, tuple(shape)) == pytest.approx(want, rel=0.03)
    # the same shape under the dense fit would be badly off: the classes are not mixed
    (f, b, want, *shape), = _gemm_points(5e10, (32, 16, 32), 2e-6, [(2048, 128, 288, 1)])
    assert pred.predict_s(f, b, tuple(shape)) == pytest.approx(want, rel=0.03)


def test_gemm_profile_round_trips_and_predicts_through_the_model():
    from hwmodels import model_for
    from workloads.builder import GraphBuilder
    shapes = [(m, n, k, 1) for m in (16, 256, 4096) for n in (8, 64, 512) for k in (27, 576)]
    prof = Profile(meta=dict(META), kinds={"conv2d": [list(p) for p in _gemm_points(
        3e10, (32, 16, 32), 3e-6, shapes)]})
    assert Profile.loads(prof.dumps()).dumps() == prof.dumps()
    b = GraphBuilder("one_conv", input_shape=(24, 20, 20), batch=3)
    b.conv2d(b.input(), 40, 3, padding=1)
    conv = [op for op in b.build().topo() if op.kind == "conv2d"][0]
    model = model_for(META["device_name"], prof)
    (_, _, want, *_), = _gemm_points(3e10, (32, 16, 32), 3e-6,
                                     [(3 * 400, 40, 24 * 9, 1, 9, 1, 400)])
    assert model.op_time_s(conv) == pytest.approx(want, rel=0.03)


def test_a_profile_builds_each_predictor_once_for_every_model():
    """Fitting a GEMM kind takes about a second: the device models of a cluster and the
    simulations of a sweep share the profile's predictors."""
    shapes = [(m, n, k, 1) for m in (16, 256, 4096) for n in (8, 64, 512) for k in (27, 576)]
    prof = Profile(meta=dict(META), kinds={"conv2d": [list(p) for p in _gemm_points(
        3e10, (32, 16, 32), 3e-6, shapes)]})
    first = prof.predictor("conv2d")
    assert prof.predictor("conv2d") is first
    from workloads.builder import GraphBuilder
    b = GraphBuilder("one_conv", input_shape=(24, 20, 20), batch=3)
    b.conv2d(b.input(), 40, 3, padding=1)
    conv = [op for op in b.build().topo() if op.kind == "conv2d"][0]
    a, c = model_for(META["device_name"], prof), model_for(META["device_name"], prof)
    assert a.op_time_s(conv) == c.op_time_s(conv) == first.predict_s(
        conv.flops, conv.bytes_moved, (3 * 400, 40, 24 * 9, 1, 9, 1, 400))
    with pytest.raises(HardwareError, match="no measured points for op kind 'relu'"):
        prof.predictor("relu")
