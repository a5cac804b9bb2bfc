//! Frame to 8-bit gray (BT.601 luma, the Y the card already computed): YUYV keeps every Y byte,
//! GREY copies rows, MJPEG is decoded by zune-jpeg straight to its luma plane (no chroma
//! upsampling or colour conversion). Writes into a buffer allocated once for the stream size.
//! Pure computation on the bytes handed in.

use super::{CaptureError, Frame, PixelFormat};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

/// A gray frame, row-major, `width * height` bytes.
#[derive(Debug, Clone, Default)]
pub struct GrayFrame {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl GrayFrame {
    pub fn new(width: u32, height: u32) -> Self {
        Self { width, height, pixels: vec![0; width as usize * height as usize] }
    }
}

/// Converts frames of one stream into a reused `GrayFrame`.
pub struct GrayConverter {
    pub gray: GrayFrame,
}

impl GrayConverter {
    pub fn new(width: u32, height: u32) -> Self {
        Self { gray: GrayFrame::new(width, height) }
    }

    /// Converts `frame` into `self.gray`. A frame of the wrong size or a corrupt JPEG is a
    /// `Decode` error (one frame lost), never a panic.
    pub fn convert(&mut self, frame: &Frame<'_>) -> Result<&GrayFrame, CaptureError> {
        let f = frame.format;
        let (w, h) = (f.width as usize, f.height as usize);
        if f.width != self.gray.width || f.height != self.gray.height {
            self.gray = GrayFrame::new(f.width, f.height);
        }
        let bad = |reason: String| CaptureError::Decode { sequence: frame.sequence, reason };
        match f.pixel {
            PixelFormat::Yuyv | PixelFormat::Grey => {
                let bpp = if f.pixel == PixelFormat::Yuyv { 2 } else { 1 };
                let stride = if f.stride == 0 { w * bpp } else { f.stride };
                if stride < w * bpp || frame.data.len() < stride * h.saturating_sub(1) + w * bpp {
                    return Err(bad(format!(
                        "{} frame of {} bytes is too short for {w}x{h} with {stride} bytes per line",
                        f.pixel,
                        frame.data.len()
                    )));
                }
                for (y, out) in self.gray.pixels.chunks_exact_mut(w).enumerate() {
                    let row = &frame.data[y * stride..y * stride + w * bpp];
                    if bpp == 1 {
                        out.copy_from_slice(row);
                    } else {
                        for (o, px) in out.iter_mut().zip(row.chunks_exact(2)) {
                            *o = px[0];
                        }
                    }
                }
            }
            PixelFormat::Mjpeg => {
                let opts = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::Luma);
                let mut dec = JpegDecoder::new_with_options(ZCursor::new(frame.data), opts);
                dec.decode_headers().map_err(|e| bad(format!("MJPEG headers: {e:?}")))?;
                let (jw, jh) = dec.dimensions().unwrap_or((0, 0));
                if (jw, jh) != (w, h) {
                    return Err(bad(format!("MJPEG frame is {jw}x{jh}, the stream was negotiated as {w}x{h}")));
                }
                dec.decode_into(&mut self.gray.pixels).map_err(|e| bad(format!("MJPEG data: {e:?}")))?;
            }
        }
        Ok(&self.gray)
    }
}

#[cfg(test)]
mod tests {
    use super::super::StreamFormat;
    use super::*;

    fn frame(pixel: PixelFormat, w: u32, h: u32, stride: usize, data: &[u8]) -> Frame<'_> {
        Frame {
            format: StreamFormat { pixel, width: w, height: h, stride, fps: 30.0 },
            data,
            sequence: 7,
            timestamp_us: 0,
        }
    }

    #[test]
    fn yuyv_gray_is_the_y_bytes_whatever_the_chroma_and_padding() {
        // 4x2 pixels, stride 10 (2 padding bytes per line). Y values are the BT.601 luma itself.
        let data = [
            16, 128, 235, 128, 0, 90, 255, 240, 0xEE, 0xEE, //
            1, 0, 2, 255, 3, 17, 4, 200, 0xEE, 0xEE,
        ];
        let mut c = GrayConverter::new(4, 2);
        let g = c.convert(&frame(PixelFormat::Yuyv, 4, 2, 10, &data)).expect("convert");
        assert_eq!(g.pixels, vec![16, 235, 0, 255, 1, 2, 3, 4]);
    }

    #[test]
    fn grey_copies_rows_and_short_frames_are_errors() {
        let data = [1, 2, 3, 9, 4, 5, 6, 9];
        let mut c = GrayConverter::new(3, 2);
        let g = c.convert(&frame(PixelFormat::Grey, 3, 2, 4, &data)).expect("convert");
        assert_eq!(g.pixels, vec![1, 2, 3, 4, 5, 6]);
        let e = c.convert(&frame(PixelFormat::Yuyv, 3, 2, 6, &data)).expect_err("short");
        assert!(e.to_string().contains("too short") && e.to_string().contains("frame 7"), "{e}");
    }

    #[test]
    fn mjpeg_gray_matches_the_image_crate_decoder_luma_and_bad_jpeg_is_an_error() {
        // A colour JPEG made here: gradients in R, G, B. The reference is the image crate's own
        // decoder (RGB out) with BT.601 luma computed here; JPEG's Y is that same luma, so both
        // must agree within rounding of the colour conversion.
        let (w, h) = (64u32, 48u32);
        let mut rgb = image::RgbImage::new(w, h);
        for (x, y, p) in rgb.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8]);
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&rgb).expect("encode");
        let reference = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).expect("decode").to_rgb8();
        let mut c = GrayConverter::new(w, h);
        let g = c.convert(&frame(PixelFormat::Mjpeg, w, h, 0, &jpeg)).expect("convert");
        let mut worst = 0i32;
        for (i, p) in reference.pixels().enumerate() {
            let y = 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
            worst = worst.max((g.pixels[i] as i32 - y.round() as i32).abs());
        }
        assert!(worst <= 2, "luma differs from the reference by {worst}");
        // A gray JPEG decodes to exactly the encoder's input where the image is flat.
        let flat = image::GrayImage::from_pixel(w, h, image::Luma([77]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95).encode_image(&flat).expect("encode");
        let g = c.convert(&frame(PixelFormat::Mjpeg, w, h, 0, &jpeg)).expect("convert");
        assert!(g.pixels.iter().all(|&v| v == 77), "{:?}", &g.pixels[..8]);
        let e = c.convert(&frame(PixelFormat::Mjpeg, w, h, 0, &jpeg[..jpeg.len() / 3])).expect_err("truncated");
        assert!(matches!(e, CaptureError::Decode { .. }), "{e}");
        let e = c.convert(&frame(PixelFormat::Mjpeg, w * 2, h, 0, &jpeg)).expect_err("size");
        assert!(e.to_string().contains("negotiated"), "{e}");
    }
}
