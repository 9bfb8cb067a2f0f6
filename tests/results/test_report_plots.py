"""Report plots: the AdaLoRA rank heatmap appears when runs report a final rank pattern (it needs
`lora_lab.adapters.rank_heatmap` from the AdaLoRA work) and averages the pattern over seeds."""

from lora_lab.results.report import report
from tests.results.fake_results import make_record, write_record


def _pattern(q0: int, v1: int) -> dict:
    return {"bert.encoder.layer.0.attention.self.query": q0, "bert.encoder.layer.0.attention.self.value": 8,
            "bert.encoder.layer.1.attention.self.query": 4, "bert.encoder.layer.1.attention.self.value": v1}


def test_rank_heatmap_from_adalora_summaries(tmp_path, monkeypatch):
    import lora_lab.adapters.rank_heatmap as heatmap
    import lora_lab.results.figures as figures

    drawn = []
    original = heatmap.plot_rank_heatmap
    monkeypatch.setattr(figures, "plot_rank_heatmap", lambda pattern, *a, **k: drawn.append(pattern) or original(pattern, *a, **k))
    for seed, (q0, v1) in enumerate(((2, 10), (4, 12))):
        record = make_record(method="adalora", init="adalora", r=12, seed=seed, val=0.7, test=0.7, adapter_extra={"target_r": 8})
        record["method_summary"] = {"rank_pattern": _pattern(q0, v1), "r_init": 12, "model_type": "bert"}
        write_record(tmp_path / "runs", record)
    write_record(tmp_path / "runs", make_record(method="lora", val=0.8, test=0.8))  # no pattern, no heatmap
    out = tmp_path / "out"
    report([tmp_path / "runs"], out=out)
    heatmaps = sorted((out / "plots").glob("rank_heatmap_*"))
    assert [p.name for p in heatmaps] == ["rank_heatmap_adalora_synthetic.pdf", "rank_heatmap_adalora_synthetic.png"]
    assert all(p.stat().st_size > 1000 for p in heatmaps)
    assert drawn == [_pattern(3, 11)] * 2  # the mean pattern over the two seeds, as PNG and PDF
