//! PNG and JPEG decoding (console screenshots, the seed paper's JPEG exports): 8 or 16 bit, gray
//! or RGB, to display gray 0..=255 — no HU window, used as shown. Dimensions are checked against
//! limits before pixel memory is allocated. Reads only the given file.

use super::MAX_PIXELS_PER_FRAME;
use crate::slice::{Pixels, SeriesId, Slice};
use image::{DynamicImage, ImageReader, Limits};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RasterError {
    #[error("{path}: cannot read the file ({reason}); check that it exists and is readable")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: not a PNG or JPEG image ({reason}); drop PNG, JPEG or DICOM files")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: declares {width}x{height} pixels, beyond the limit of {limit} pixels; refusing to allocate it")]
    TooLarge { path: PathBuf, width: u32, height: u32, limit: u64 },
    #[error("{path}: image data cannot be decoded ({reason}); the file may be truncated or damaged")]
    Decode { path: PathBuf, reason: String },
    #[error("{path}: {width}x{height} pixels is too small to be a CT slice (at least 16x16)")]
    TooSmall { path: PathBuf, width: u32, height: u32 },
}

/// Smallest image accepted as a slice.
pub const MIN_SIDE: u32 = 16;

/// Decodes a PNG or JPEG file into a gray slice. `series` is the drop folder's subfolder.
pub fn decode_file(path: &Path, series: SeriesId) -> Result<Slice, RasterError> {
    let bytes =
        std::fs::read(path).map_err(|e| RasterError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
    decode_bytes(&bytes, path, series)
}

/// Decodes a PNG or JPEG already in memory (`path` names it in errors and gives the instance).
pub fn decode_bytes(bytes: &[u8], path: &Path, series: SeriesId) -> Result<Slice, RasterError> {
    let p = || path.to_path_buf();
    let open = || {
        let mut r = ImageReader::new(std::io::Cursor::new(bytes));
        // The extension is the first guess, the content overrides it (as `ImageReader::open` does).
        if let Ok(f) = image::ImageFormat::from_path(path) {
            r.set_format(f);
        }
        r.with_guessed_format().map_err(|e| RasterError::Read { path: p(), reason: e.to_string() })
    };
    let reader = open()?;
    match reader.format() {
        Some(image::ImageFormat::Png) | Some(image::ImageFormat::Jpeg) => {}
        other => {
            let reason = match other {
                Some(f) => format!("detected {f:?}"),
                None => "unrecognised content".to_string(),
            };
            return Err(RasterError::Format { path: p(), reason });
        }
    }
    // Read the header first so that a declared 60000x60000 image is refused cheaply.
    let (width, height) =
        reader.into_dimensions().map_err(|e| RasterError::Decode { path: p(), reason: e.to_string() })?;
    if u64::from(width) * u64::from(height) > MAX_PIXELS_PER_FRAME {
        return Err(RasterError::TooLarge { path: p(), width, height, limit: MAX_PIXELS_PER_FRAME });
    }
    if width < MIN_SIDE || height < MIN_SIDE {
        return Err(RasterError::TooSmall { path: p(), width, height });
    }
    let mut reader = open()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(8192);
    limits.max_image_height = Some(8192);
    limits.max_alloc = Some(MAX_PIXELS_PER_FRAME * 8);
    reader.limits(limits);
    // A decoder bug must cost one file, not the daemon: contain a panic inside the codec, as the
    // DICOM decoder does (fuzzing: a 454-byte JPEG made zune-jpeg index out of bounds and would
    // have ended the daemon, then again after each restart: tests/data/fuzz/raster-jpeg-panic-11.jpg).
    let img = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.decode()))
        .map_err(|_| RasterError::Decode { path: p(), reason: "the image decoder failed on this file".into() })?
        .map_err(|e| RasterError::Decode { path: p(), reason: e.to_string() })?;
    let pixels = match &img {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => Pixels::Gray8(img.to_luma8().into_raw()),
        _ => Pixels::Gray16(img.to_luma16().into_raw()),
    };
    Ok(Slice {
        source: p(),
        frame: 0,
        width,
        height,
        pixels,
        series,
        instance: instance_from_name(path),
        order: instance_from_name(path).unwrap_or(1),
        position_z: None,
    })
}

/// The trailing number of a file stem (`slice-0012.png` -> 12), used to order raster slices.
pub fn instance_from_name(path: &Path) -> Option<i32> {
    let stem = path.file_stem()?.to_str()?;
    let digits: String = stem.chars().rev().take_while(|c| c.is_ascii_digit()).collect();
    let digits: String = digits.chars().rev().collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_rgb_and_16_bit_images_decode_to_the_same_gray() {
        let t = tempfile::tempdir().expect("tempdir");
        let (w, h) = (32u32, 20u32);
        let g8 = image::GrayImage::from_fn(w, h, |x, y| image::Luma([(x * 7 + y) as u8]));
        let g16 = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(w, h, |x, y| {
            image::Luma([u16::from((x * 7 + y) as u8) * 257])
        });
        let rgb = image::RgbImage::from_fn(w, h, |x, y| {
            let v = (x * 7 + y) as u8;
            image::Rgb([v, v, v])
        });
        g8.save(t.path().join("a-1.png")).expect("png8");
        g16.save(t.path().join("b-2.png")).expect("png16");
        rgb.save(t.path().join("c-3.png")).expect("rgb");
        rgb.save(t.path().join("d-4.jpg")).expect("jpeg");
        let s = SeriesId("s".into());
        let a = decode_file(&t.path().join("a-1.png"), s.clone()).expect("8-bit");
        let b = decode_file(&t.path().join("b-2.png"), s.clone()).expect("16-bit");
        let c = decode_file(&t.path().join("c-3.png"), s.clone()).expect("rgb");
        let d = decode_file(&t.path().join("d-4.jpg"), s).expect("jpeg");
        assert!(matches!(a.pixels, Pixels::Gray8(_)) && matches!(b.pixels, Pixels::Gray16(_)));
        assert!((0..a.pixels.len()).all(|i| a.pixels.gray(i) == b.pixels.gray(i)), "16-bit scales to the same gray");
        assert_eq!(a.pixels, c.pixels);
        let worst = (0..a.pixels.len()).map(|i| (a.pixels.gray(i) - d.pixels.gray(i)).abs()).fold(0.0f32, f32::max);
        assert!(worst < 12.0, "JPEG is lossy but close: {worst}");
        assert_eq!((a.width, a.height, a.instance, d.instance), (32, 20, Some(1), Some(4)));
    }

    #[test]
    fn garbage_tiny_and_huge_declared_images_are_refused() {
        let t = tempfile::tempdir().expect("tempdir");
        let s = SeriesId("s".into());
        std::fs::write(t.path().join("junk.png"), b"this is not an image at all").expect("write");
        let e = decode_file(&t.path().join("junk.png"), s.clone()).expect_err("garbage");
        assert!(e.to_string().contains("cannot be decoded"), "{e}");
        std::fs::write(t.path().join("junk.bin"), b"this is not an image at all").expect("write");
        let e = decode_file(&t.path().join("junk.bin"), s.clone()).expect_err("garbage");
        assert!(e.to_string().contains("not a PNG or JPEG"), "{e}");
        image::GrayImage::new(1, 1).save(t.path().join("one.png")).expect("1x1");
        let e = decode_file(&t.path().join("one.png"), s.clone()).expect_err("1x1");
        assert!(e.to_string().contains("too small"), "{e}");
        // A PNG header that declares 60000x60000 pixels, with no data behind it (tests/data/README.md).
        let huge = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/huge-60000x60000.png");
        std::fs::copy(huge, t.path().join("huge.png")).expect("fixture");
        let e = decode_file(&t.path().join("huge.png"), s.clone()).expect_err("huge");
        assert!(e.to_string().contains("60000x60000"), "{e}");
        // Truncated: a valid PNG cut in half.
        image::GrayImage::from_pixel(64, 64, image::Luma([9])).save(t.path().join("full.png")).expect("png");
        let bytes = std::fs::read(t.path().join("full.png")).expect("read");
        std::fs::write(t.path().join("cut.png"), &bytes[..bytes.len() / 2]).expect("write");
        assert!(decode_file(&t.path().join("cut.png"), s).is_err());
    }
}
