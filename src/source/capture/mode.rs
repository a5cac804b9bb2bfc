//! Capture mode negotiation without a device: from what a capture card offers (pixel formats,
//! frame sizes, frame rates) and what the `[capture]` table asks for, the mode to open. The
//! profile's mode is a wish: a card that cannot deliver it exactly gets the nearest mode it
//! offers, and the choice is logged by the V4L2 layer (`v4l2.rs`). Pure functions; touches nothing.

use super::PixelFormat;

/// Frame sizes of one pixel format, as a device lists them.
#[derive(Debug, Clone, PartialEq)]
pub enum Sizes {
    /// A list of exact sizes, each with the rates it offers.
    Discrete(Vec<(u32, u32, Rates)>),
    /// Any size from min to max in steps (V4L2 stepwise/continuous), at the given rates.
    Stepwise { min: (u32, u32), max: (u32, u32), step: (u32, u32), rates: Rates },
}

/// Frame rates of one format and size, in frames per second.
#[derive(Debug, Clone, PartialEq)]
pub enum Rates {
    Discrete(Vec<f32>),
    Range {
        min: f32,
        max: f32,
    },
    /// The device did not say (some drivers enumerate no intervals); the wish is tried as is.
    Unknown,
}

/// One pixel format a device offers.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub pixel: PixelFormat,
    pub sizes: Sizes,
}

/// A mode: pixel format, frame size, frame rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mode {
    pub pixel: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub fps: f32,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}x{} at {} fps", self.pixel, self.width, self.height, self.fps)
    }
}

/// The offered mode nearest to `wish`, or None when the device offers no format this source reads.
///
/// Order of importance: the wished pixel format (else YUYV, GREY, MJPEG in that order); then the
/// frame size, because the viewport is given in frame pixels (exact, else the smallest
/// |dw| + |dh|, a tie going to the larger frame); then the rate nearest the wish (a tie going to
/// the faster). A console shows still slices, so a slower rate costs little; a wrong size moves
/// the viewport.
pub fn nearest(offers: &[Offer], wish: Mode) -> Option<Mode> {
    let rank = |p: PixelFormat| -> u8 {
        if p == wish.pixel {
            0
        } else {
            match p {
                PixelFormat::Yuyv => 1,
                PixelFormat::Grey => 2,
                PixelFormat::Mjpeg => 3,
            }
        }
    };
    let offer = offers.iter().filter(|o| !sizes_empty(&o.sizes)).min_by_key(|o| rank(o.pixel))?;
    let (width, height, rates) = match &offer.sizes {
        Sizes::Discrete(list) => {
            let dist = |w: u32, h: u32| u64::from(w.abs_diff(wish.width)) + u64::from(h.abs_diff(wish.height));
            let best = list.iter().min_by(|a, b| {
                dist(a.0, a.1)
                    .cmp(&dist(b.0, b.1))
                    .then((u64::from(b.0) * u64::from(b.1)).cmp(&(u64::from(a.0) * u64::from(a.1))))
            })?;
            (best.0, best.1, best.2.clone())
        }
        Sizes::Stepwise { min, max, step, rates } => {
            (snap(wish.width, min.0, max.0, step.0), snap(wish.height, min.1, max.1, step.1), rates.clone())
        }
    };
    let fps = match rates {
        Rates::Discrete(list) => list
            .iter()
            .copied()
            .filter(|r| r.is_finite() && *r > 0.0)
            .min_by(|a, b| (a - wish.fps).abs().total_cmp(&(b - wish.fps).abs()).then(b.total_cmp(a)))
            .unwrap_or(wish.fps),
        Rates::Range { min, max } if min <= max => wish.fps.clamp(min, max),
        Rates::Range { .. } | Rates::Unknown => wish.fps,
    };
    Some(Mode { pixel: offer.pixel, width, height, fps })
}

/// The offers in one line for logs: `yuyv 640x480@30,25 1920x1080@5,1; grey 16x16..1280x1024/16x8@1-15`.
pub fn describe(offers: &[Offer]) -> String {
    let rates = |r: &Rates| match r {
        Rates::Discrete(v) => v.iter().map(|f| format!("{f}")).collect::<Vec<_>>().join(","),
        Rates::Range { min, max } => format!("{min}-{max}"),
        Rates::Unknown => "?".into(),
    };
    let one = |o: &Offer| match &o.sizes {
        Sizes::Discrete(list) => {
            let sizes: Vec<String> = list.iter().map(|(w, h, r)| format!("{w}x{h}@{}", rates(r))).collect();
            format!("{} {}", o.pixel, sizes.join(" "))
        }
        Sizes::Stepwise { min, max, step, rates: r } => {
            format!("{} {}x{}..{}x{}/{}x{}@{}", o.pixel, min.0, min.1, max.0, max.1, step.0, step.1, rates(r))
        }
    };
    offers.iter().map(one).collect::<Vec<_>>().join("; ")
}

fn sizes_empty(s: &Sizes) -> bool {
    matches!(s, Sizes::Discrete(list) if list.is_empty())
}

/// `v` clamped into min..=max and moved onto the step grid from min (nearest step).
fn snap(v: u32, min: u32, max: u32, step: u32) -> u32 {
    let (lo, hi) = (min.min(max), max.max(min));
    let v = v.clamp(lo, hi);
    if step <= 1 {
        return v;
    }
    let k = (v - lo + step / 2) / step;
    (lo + k * step).min(hi - (hi - lo) % step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wish(pixel: PixelFormat, width: u32, height: u32, fps: f32) -> Mode {
        Mode { pixel, width, height, fps }
    }

    /// What Linux 6.1's vivid driver offers on its webcam input in YUYV (as listed in the VM bench:
    /// `v4l2-ctl --list-formats-ext`): large sizes only slowly.
    fn vivid_webcam() -> Vec<Offer> {
        let r = |v: &[f32]| Rates::Discrete(v.to_vec());
        let all = [1.0, 2.0, 4.0, 5.0, 10.0, 12.5, 15.0, 25.0, 30.0, 40.0, 50.0, 60.0];
        vec![Offer {
            pixel: PixelFormat::Yuyv,
            sizes: Sizes::Discrete(vec![
                (320, 180, r(&all)),
                (640, 360, r(&all[..10])),
                (640, 480, r(&all[..8])),
                (1280, 720, r(&all[..6])),
                (1920, 1080, r(&all[..4])),
                (3840, 2160, r(&all[..2])),
            ]),
        }]
    }

    #[test]
    fn an_offered_mode_is_taken_as_asked() {
        let w = wish(PixelFormat::Yuyv, 640, 480, 25.0);
        assert_eq!(nearest(&vivid_webcam(), w), Some(w));
    }

    #[test]
    fn the_size_is_kept_before_the_rate() {
        // The shipped 1080p30 wish on vivid: 1920x1080 exists, only at 5 fps.
        let got = nearest(&vivid_webcam(), wish(PixelFormat::Yuyv, 1920, 1080, 30.0));
        assert_eq!(got, Some(wish(PixelFormat::Yuyv, 1920, 1080, 5.0)));
        // A size not offered: the nearest one (1280x720 for 1366x768), then its nearest rate.
        let got = nearest(&vivid_webcam(), wish(PixelFormat::Yuyv, 1366, 768, 60.0));
        assert_eq!(got, Some(wish(PixelFormat::Yuyv, 1280, 720, 12.5)));
    }

    #[test]
    fn another_format_the_source_reads_when_the_wished_one_is_missing() {
        // MJPEG asked, only YUYV offered.
        let got = nearest(&vivid_webcam(), wish(PixelFormat::Mjpeg, 640, 480, 30.0));
        assert_eq!(got, Some(wish(PixelFormat::Yuyv, 640, 480, 25.0)));
        // The wished format wins over a better-ranked one when offered.
        let mut offers = vivid_webcam();
        offers.push(Offer { pixel: PixelFormat::Mjpeg, sizes: Sizes::Discrete(vec![(800, 600, Rates::Unknown)]) });
        let got = nearest(&offers, wish(PixelFormat::Mjpeg, 1920, 1080, 30.0));
        assert_eq!(got, Some(wish(PixelFormat::Mjpeg, 800, 600, 30.0)));
        // Nothing readable: no mode.
        assert_eq!(nearest(&[], wish(PixelFormat::Yuyv, 640, 480, 30.0)), None);
        let empty = [Offer { pixel: PixelFormat::Yuyv, sizes: Sizes::Discrete(vec![]) }];
        assert_eq!(nearest(&empty, wish(PixelFormat::Yuyv, 640, 480, 30.0)), None);
    }

    #[test]
    fn stepwise_sizes_and_rate_ranges_are_clamped_and_snapped() {
        let offers = [Offer {
            pixel: PixelFormat::Grey,
            sizes: Sizes::Stepwise {
                min: (16, 16),
                max: (1280, 1024),
                step: (16, 8),
                rates: Rates::Range { min: 1.0, max: 15.0 },
            },
        }];
        let got = nearest(&offers, wish(PixelFormat::Grey, 1920, 1081, 30.0));
        assert_eq!(got, Some(wish(PixelFormat::Grey, 1280, 1024, 15.0)));
        let got = nearest(&offers, wish(PixelFormat::Grey, 1000, 501, 10.0));
        assert_eq!(got, Some(wish(PixelFormat::Grey, 1008, 504, 10.0)));
        assert_eq!(snap(1281, 16, 1281, 16), 1280);
    }

    #[test]
    fn the_log_line_names_every_readable_mode() {
        let d = describe(&vivid_webcam());
        assert!(d.starts_with("yuyv 320x180@1,2,4,5,10,12.5,15,25,30,40,50,60 640x360@"), "{d}");
        assert!(d.ends_with("1920x1080@1,2,4,5 3840x2160@1,2"), "{d}");
        let step = [Offer {
            pixel: PixelFormat::Grey,
            sizes: Sizes::Stepwise {
                min: (16, 16),
                max: (64, 32),
                step: (16, 8),
                rates: Rates::Range { min: 1.0, max: 15.0 },
            },
        }];
        assert_eq!(describe(&step), "grey 16x16..64x32/16x8@1-15");
    }

    #[test]
    fn rate_ties_go_to_the_faster_and_size_ties_to_the_larger() {
        let offers = [Offer {
            pixel: PixelFormat::Yuyv,
            sizes: Sizes::Discrete(vec![
                (600, 400, Rates::Discrete(vec![20.0, 40.0])),
                (800, 600, Rates::Discrete(vec![20.0, 40.0])),
            ]),
        }];
        let got = nearest(&offers, wish(PixelFormat::Yuyv, 700, 500, 30.0));
        assert_eq!(got, Some(wish(PixelFormat::Yuyv, 800, 600, 40.0)));
    }
}
