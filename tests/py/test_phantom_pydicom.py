"""Cross-check of the phantom's DICOM files with an independent reader (pydicom).

Every written file must open in pydicom as CT Image Storage with valid file meta, and
pixel_array * RescaleSlope + RescaleIntercept must equal the generator's own HU values
(written with the hidden --emit-hu flag) within 1 HU.
"""
import json
import subprocess

import numpy as np
import pydicom
import pytest

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory, pe_sentinel_bin):
    out = tmp_path_factory.mktemp("phantom")
    subprocess.run(
        [str(pe_sentinel_bin), "phantom", "--out", str(out), "--series", "3", "--slices", "10",
         "--seed", "17", "--format", "both", "--emit-hu"],
        check=True, capture_output=True,
    )
    return out


def test_every_dicom_matches_the_generated_hu(phantom_dir):
    summary = json.loads((phantom_dir / "phantom.json").read_text())
    checked = 0
    for s in summary["series"]:
        d = phantom_dir / s["folder"]
        truth = json.loads((d / "truth.json").read_text())
        zs = []
        for f in sorted((d / "dicom").glob("*.dcm")):
            ds = pydicom.dcmread(f)  # raises on a malformed file
            assert ds.file_meta.MediaStorageSOPClassUID == CT_IMAGE_STORAGE
            assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
            assert ds.SOPClassUID == CT_IMAGE_STORAGE
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            assert ds.Modality == "CT"
            assert ds.SeriesInstanceUID == truth["series_instance_uid"] == s["series_instance_uid"]
            assert ds.StudyInstanceUID == truth["study_instance_uid"]
            assert (ds.Rows, ds.Columns) == (512, 512)
            assert float(ds.PixelSpacing[0]) == pytest.approx(truth["pixel_spacing_mm"], abs=1e-3)
            assert float(ds.SliceThickness) == pytest.approx(truth["slice_thickness_mm"], abs=1e-3)
            assert list(map(float, ds.ImageOrientationPatient)) == [1, 0, 0, 0, 1, 0]
            assert float(ds.SliceLocation) == pytest.approx(float(ds.ImagePositionPatient[2]))
            assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (100.0, 700.0)
            zs.append(float(ds.ImagePositionPatient[2]))
            hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            generated = np.fromfile(d / "hu" / (f.stem + ".f32"), dtype="<f4").reshape(512, 512)
            worst = np.abs(hu - generated).max()
            assert worst <= 1.0, f"{f}: pydicom HU differ from the generator's by {worst}"
            checked += 1
        # Slices are contiguous: spacing equals the slice thickness.
        steps = np.diff(zs)
        assert np.allclose(steps, -truth["slice_thickness_mm"], atol=1e-3), steps
    assert checked == 30


def test_png_is_the_console_window_of_the_dicom(phantom_dir):
    from PIL import Image

    d = phantom_dir / "series-000"
    for f in sorted((d / "dicom").glob("*.dcm"))[:3]:
        ds = pydicom.dcmread(f)
        hu = ds.pixel_array.astype(np.float64) + float(ds.RescaleIntercept)
        expected = np.clip(np.round((hu - (100 - 350)) / 700 * 255), 0, 255).astype(np.uint8)
        png = np.asarray(Image.open(d / "png" / (f.stem + ".png")))
        assert png.dtype == np.uint8 and png.shape == (512, 512)
        # Rounding of exact halves may differ by one gray level between Rust and numpy.
        assert np.abs(png.astype(int) - expected.astype(int)).max() <= 1


def test_labels_agree_with_truth_json(phantom_dir):
    for d in sorted(phantom_dir.glob("series-*")):
        truth = json.loads((d / "truth.json").read_text())
        for sl in truth["slice_labels"]:
            lines = (d / "labels" / (sl["file"] + ".txt")).read_text().splitlines()
            assert len(lines) == len(sl["boxes"])
            for line, b in zip(lines, sl["boxes"]):
                cls, cx, cy, w, h = line.split()
                assert cls == "0"
                assert float(cx) == pytest.approx((b["x0"] + b["x1"]) / 2 / 512, abs=1e-6)
                assert float(w) == pytest.approx((b["x1"] - b["x0"]) / 512, abs=1e-6)
                assert 0 < float(h) <= 1
