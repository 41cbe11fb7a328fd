"""Gathering RD curves from records and the BD table."""

from __future__ import annotations

import pytest

from hyreslib.results import rd


def _records():
    out = []
    for image, offset in (("a", 0.0), ("b", 1.0), ("c", 2.0)):
        for q, (bpp, psnr) in enumerate([(0.2, 25.0), (0.5, 28.0), (1.0, 31.0), (2.0, 35.0)]):
            out.append({"codec": "anchor", "setting": f"q{q}", "image": image, "bpp": bpp, "psnr": psnr + offset,
                        "ms_ssim": 0.9})
            if image != "c":  # the test curve lacks image c
                out.append({"codec": "test", "setting": f"q{q}", "image": image, "bpp": bpp * 0.8,
                            "psnr": psnr + offset, "ms_ssim": None})
    return out


def test_curves_are_means_over_the_common_images():
    records = _records()
    common = rd.common_images(records)
    assert common == {"a", "b"}
    curves = rd.mean_curves(records, images=common)
    assert curves["anchor"]["psnr"] == [25.5, 28.5, 31.5, 35.5]
    assert curves["anchor"]["n"] == [2, 2, 2, 2]
    assert curves["test"]["ms_ssim"] == [None] * 4
    assert curves["anchor"]["bpp"] == sorted(curves["anchor"]["bpp"])


def test_bd_table_against_each_present_anchor(tmp_path):
    curves = rd.mean_curves(_records(), images={"a", "b"})
    rows = rd.bd_table(curves, anchors=["anchor", "missing"])
    (row,) = rows
    assert row["codec"] == "test" and row["bd_rate_pct"] == pytest.approx(-20.0, abs=1e-6)
    assert row["bd_psnr_db"] > 0
    csv_path, md_path = rd.write_table(rows, tmp_path / "bd")
    assert "-20.0" in md_path.read_text() and csv_path.read_text().startswith("codec,anchor")


def test_incomparable_curves_get_na():
    curves = {"anchor": {"bpp": [0.1, 0.2], "psnr": [20.0, 22.0]}, "far": {"bpp": [3.0, 4.0], "psnr": [40.0, 42.0]},
              "single": {"bpp": [1.0], "psnr": [30.0]}}
    rows = {r["codec"]: r for r in rd.bd_table(curves, ["anchor"])}
    assert rows["far"]["bd_rate_pct"] is None and rows["single"]["bd_psnr_db"] is None
    assert rows["far"]["note"] == ("no common PSNR range (40.0–42.0 dB vs the anchor's 20.0–22.0 dB); "
                                   "no common bitrate range (3.000–4.000 bpp vs the anchor's 0.100–0.200 bpp)")
    assert rows["single"]["note"].startswith("1 point:")


def test_bd_rate_without_bd_psnr_says_which_range_is_missing():
    curves = {"anchor": {"bpp": [0.2, 2.0], "psnr": [24.0, 36.0]}, "near": {"bpp": [2.4, 6.5], "psnr": [36.0, 50.0]}}
    (row,) = rd.bd_table(curves, ["anchor"])
    assert row["bd_rate_pct"] is None and row["bd_psnr_db"] is None
    curves["near"]["psnr"] = [30.0, 50.0]  # quality overlaps, rate does not: BD-rate only
    (row,) = rd.bd_table(curves, ["anchor"])
    assert row["bd_rate_pct"] is not None and row["bd_psnr_db"] is None
    assert row["note"] == "no common bitrate range (2.400–6.500 bpp vs the anchor's 0.200–2.000 bpp)"


def test_table_states_why_a_value_is_missing(tmp_path):
    curves = {"anchor": {"bpp": [0.1, 0.2], "psnr": [20.0, 22.0]}, "far": {"bpp": [3.0, 4.0], "psnr": [40.0, 42.0]}}
    _, md_path = rd.write_table(rd.bd_table(curves, ["anchor"]), tmp_path / "bd")
    assert "| far | anchor | n/a | n/a | 2 | no common PSNR range" in md_path.read_text()


def test_classical_records_read_current_and_older_files():
    old = {"records": [{"image": "a", "codec": "jpeg", "quality": 30, "bpp": 0.5, "psnr": 30.0, "ms_ssim": 0.9},
                       {"image": "a", "codec": "png", "quality": None, "bpp": 9.0, "psnr": float("inf"),
                        "ms_ssim": 1.0}]}
    new = {"records": [{**old["records"][0], "setting": "q30"}, {**old["records"][1], "setting": "lossless"}]}
    exact = {"image": "flat", "codec": "jpeg", "setting": "q95", "bpp": 0.1, "psnr": float("inf"), "ms_ssim": 1.0}
    for doc in (old, new, {"records": new["records"] + [exact]}):
        (r,) = rd.classical_records(doc)  # lossless formats, and lossless results, are no RD point
        assert (r["codec"], r["setting"], r["image"], r["bpp"]) == ("jpeg", "q30", "a", 0.5)
