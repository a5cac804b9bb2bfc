//! New-slice detection. The console shows one slice for many frames; only a frame whose viewport
//! differs from the last analysed slice becomes a `Slice`. Frames are compared as fingerprints:
//! the viewport reduced by block means so its longer side is at most [`FP_SIDE`] (averaging
//! removes capture noise and JPEG ringing), with cells under mask rectangles (text, cursor
//! read-outs) left out. Two fingerprints differ when more than `changed_fraction` of the unmasked
//! cells differ by more than `pixel_threshold` gray levels: a mouse cursor or a changed
//! annotation outside the masks stays far below that, a new CT slice (new anatomy, new noise)
//! far above.
//!
//! A picture is taken once it has been steady for `settle_frames` frames (no half-drawn
//! frames), and only if it differs from every slice in a bounded memory of recent slices
//! (re-displays after scrolling back are counted, not analysed again). Nearly uniform
//! viewports (a blank screen) are counted, not analysed. Also here: the capture series label.
//! Pure computation on buffers allocated once per viewport size.

use super::convert::GrayFrame;
use super::viewport::{crop_into, Rect};
use std::collections::VecDeque;

/// Longest fingerprint side, in cells.
pub const FP_SIDE: u32 = 256;

/// Change-detection settings (the `[capture]` keys of the same names).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectConfig {
    pub viewport: Rect,
    /// Frame rectangles ignored by the comparison (must overlap the viewport to matter).
    pub masks: Vec<Rect>,
    /// Gray levels a fingerprint cell must move by to count as changed.
    pub pixel_threshold: u8,
    /// Fraction of unmasked cells that must change for a new picture.
    pub changed_fraction: f32,
    /// Frames a new picture must stay steady before it is taken.
    pub settle_frames: u32,
    /// Recent slices remembered to recognise re-displays.
    pub memory: usize,
}

impl DetectConfig {
    pub fn new(viewport: Rect) -> Self {
        Self { viewport, masks: Vec::new(), pixel_threshold: 12, changed_fraction: 0.01, settle_frames: 1, memory: 64 }
    }
}

/// What one frame turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A new slice: its pixels are in `SliceDetector::pixels()`.
    NewSlice,
    /// The same picture as before (possibly with a moved cursor or changed masked text).
    Same,
    /// A changed picture still settling.
    Settling,
    /// A settled picture equal to a slice analysed recently (scrolled back).
    Redisplay,
    /// A settled picture without image content.
    Blank,
}

/// Counters for the log and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DetectStats {
    pub frames: u64,
    pub new_slices: u64,
    pub redisplays: u64,
    pub blanks: u64,
}

pub struct SliceDetector {
    cfg: DetectConfig,
    /// Viewport pixels of the current frame.
    crop: Vec<u8>,
    /// Block size and fingerprint dimensions.
    block: usize,
    fw: usize,
    fh: usize,
    /// Cells that count (not under a mask).
    live: Vec<bool>,
    live_count: usize,
    cur: Vec<u8>,
    prev: Vec<u8>,
    have_prev: bool,
    /// Frames the current picture has been steady (1 on the first frame of a change).
    steady: u32,
    /// Recent slices' fingerprints, oldest first; buffers are recycled.
    recent: VecDeque<Vec<u8>>,
    pub stats: DetectStats,
}

impl SliceDetector {
    pub fn new(cfg: DetectConfig) -> Self {
        let v = cfg.viewport;
        let block = v.width.max(v.height).div_ceil(FP_SIDE).max(1) as usize;
        let (fw, fh) = ((v.width as usize).div_ceil(block), (v.height as usize).div_ceil(block));
        let mut live = vec![true; fw * fh];
        for m in &cfg.masks {
            if let Some(l) = v.intersect_local(m) {
                for cy in l.y as usize / block..(l.bottom() as usize).div_ceil(block) {
                    for cx in l.x as usize / block..(l.right() as usize).div_ceil(block) {
                        live[cy * fw + cx] = false;
                    }
                }
            }
        }
        let live_count = live.iter().filter(|&&l| l).count();
        let memory = cfg.memory.max(1);
        Self {
            crop: vec![0; v.width as usize * v.height as usize],
            block,
            fw,
            fh,
            live,
            live_count,
            cur: vec![0; fw * fh],
            prev: vec![0; fw * fh],
            have_prev: false,
            steady: 0,
            recent: VecDeque::with_capacity(memory),
            cfg,
            stats: DetectStats::default(),
        }
    }

    pub fn config(&self) -> &DetectConfig {
        &self.cfg
    }

    /// The viewport pixels of the last frame (the new slice after `NewSlice`).
    pub fn pixels(&self) -> &[u8] {
        &self.crop
    }

    /// Classifies one gray frame (which must contain the viewport; checked at configuration).
    pub fn push(&mut self, frame: &GrayFrame) -> FrameKind {
        self.stats.frames += 1;
        crop_into(frame, &self.cfg.viewport, &mut self.crop);
        self.fingerprint();
        let changed = !self.have_prev || self.differs(&self.cur, &self.prev);
        std::mem::swap(&mut self.cur, &mut self.prev);
        self.have_prev = true;
        // From here the current fingerprint is in `prev`.
        self.steady = if changed { 1 } else { self.steady.saturating_add(1) };
        if self.steady <= self.cfg.settle_frames {
            return FrameKind::Settling;
        }
        if self.steady > self.cfg.settle_frames + 1 {
            return FrameKind::Same;
        }
        // Steady for exactly settle_frames + 1 frames: decide once.
        let (lo, hi) = self.live_range(&self.prev);
        if hi.saturating_sub(lo) <= self.cfg.pixel_threshold.saturating_mul(2) {
            self.stats.blanks += 1;
            return FrameKind::Blank;
        }
        if self.recent.iter().any(|r| !self.differs(r, &self.prev)) {
            self.stats.redisplays += 1;
            return FrameKind::Redisplay;
        }
        let mut slot = if self.recent.len() >= self.cfg.memory.max(1) {
            self.recent.pop_front().unwrap_or_default()
        } else {
            Vec::with_capacity(self.prev.len())
        };
        slot.clear();
        slot.extend_from_slice(&self.prev);
        self.recent.push_back(slot);
        self.stats.new_slices += 1;
        FrameKind::NewSlice
    }

    fn fingerprint(&mut self) {
        let (b, vw, vh) = (self.block, self.cfg.viewport.width as usize, self.cfg.viewport.height as usize);
        for cy in 0..self.fh {
            let (y0, y1) = (cy * b, ((cy + 1) * b).min(vh));
            for cx in 0..self.fw {
                let (x0, x1) = (cx * b, ((cx + 1) * b).min(vw));
                let mut sum = 0u32;
                for y in y0..y1 {
                    sum += self.crop[y * vw + x0..y * vw + x1].iter().map(|&v| u32::from(v)).sum::<u32>();
                }
                let n = ((y1 - y0) * (x1 - x0)) as u32;
                self.cur[cy * self.fw + cx] = ((sum + n / 2) / n) as u8;
            }
        }
    }

    fn differs(&self, a: &[u8], b: &[u8]) -> bool {
        let t = self.cfg.pixel_threshold;
        let n = a.iter().zip(b).zip(&self.live).filter(|((&x, &y), &live)| live && x.abs_diff(y) > t).count();
        n as f32 > self.cfg.changed_fraction * self.live_count as f32
    }

    fn live_range(&self, fp: &[u8]) -> (u8, u8) {
        fp.iter().zip(&self.live).filter(|(_, &l)| l).fold((255, 0), |(lo, hi), (&v, _)| (lo.min(v), hi.max(v)))
    }
}

/// Series labels for capture slices: `capture-<UTC start time>`, a new series when no new slice
/// came for `gap_ms`; instance numbers count the slices of a series from 1 in arrival order.
pub struct SeriesLabeler {
    gap_ms: u64,
    current: Option<(String, i32, u64)>,
}

impl SeriesLabeler {
    pub fn new(gap_ms: u64) -> Self {
        Self { gap_ms, current: None }
    }

    /// Label and instance number for a new slice seen at `unix_ms` (wall clock, for the label)
    /// and `mono_ms` (monotonic, for the gap).
    pub fn next(&mut self, unix_ms: i64, mono_ms: u64) -> (String, i32) {
        match &mut self.current {
            Some((label, n, last)) if mono_ms.saturating_sub(*last) <= self.gap_ms => {
                *n += 1;
                *last = mono_ms;
                (label.clone(), *n)
            }
            _ => {
                let label = format!("capture-{}", utc_stamp(unix_ms));
                self.current = Some((label.clone(), 1, mono_ms));
                (label, 1)
            }
        }
    }
}

/// `YYYYMMDDTHHMMSSZ` (ISO 8601 basic) of a Unix time in milliseconds.
pub fn utc_stamp(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = crate::civil::civil_date(days);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_match_known_dates() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        // 2000-02-29 12:34:56 UTC = 951827696 s.
        assert_eq!(utc_stamp(951_827_696_000), "20000229T123456Z");
        // 2026-11-26 19:33:56 UTC = 1795721636 s.
        assert_eq!(utc_stamp(1_795_721_636_999), "20261126T193356Z");
    }

    #[test]
    fn a_new_series_starts_after_the_idle_gap() {
        let mut l = SeriesLabeler::new(10_000);
        let (a, n) = l.next(0, 1000);
        assert_eq!((a.as_str(), n), ("capture-19700101T000000Z", 1));
        assert_eq!(l.next(5000, 5000), (a.clone(), 2));
        assert_eq!(l.next(15_000, 15_000), (a.clone(), 3));
        let (b, n) = l.next(25_001_000, 25_001);
        assert_eq!((b.as_str(), n), ("capture-19700101T065641Z", 1));
    }

    fn frame(v: u8, spot: Option<(u32, u32, u32)>) -> GrayFrame {
        let mut f = GrayFrame::new(64, 64);
        for (i, p) in f.pixels.iter_mut().enumerate() {
            *p = v.wrapping_add((i % 7) as u8 * 20);
        }
        if let Some((x, y, s)) = spot {
            for dy in 0..s {
                for dx in 0..s {
                    f.pixels[((y + dy) * 64 + x + dx) as usize] = 255;
                }
            }
        }
        f
    }

    #[test]
    fn settling_redisplay_masks_and_blank_frames() {
        let mut cfg = DetectConfig::new(Rect::new(8, 8, 48, 48));
        cfg.masks = vec![Rect::new(0, 0, 20, 20)];
        let mut d = SliceDetector::new(cfg);
        use FrameKind::*;
        assert_eq!(d.push(&frame(0, None)), Settling);
        assert_eq!(d.push(&frame(0, None)), NewSlice);
        assert_eq!(d.push(&frame(0, None)), Same);
        // A big change inside the mask only: still the same picture.
        assert_eq!(d.push(&frame(0, Some((8, 8, 12)))), Same);
        // A 2x2 spot outside the mask (a cursor): below 1 %.
        assert_eq!(d.push(&frame(0, Some((40, 40, 2)))), Same);
        assert_eq!(d.push(&frame(50, None)), Settling);
        assert_eq!(d.push(&frame(50, None)), NewSlice);
        assert_eq!(d.push(&frame(0, None)), Settling);
        assert_eq!(d.push(&frame(0, None)), Redisplay);
        let flat = GrayFrame { width: 64, height: 64, pixels: vec![9; 64 * 64] };
        assert_eq!(d.push(&flat), Settling);
        assert_eq!(d.push(&flat), Blank);
        assert_eq!(d.stats, DetectStats { frames: 11, new_slices: 2, redisplays: 1, blanks: 1 });
        // settle_frames = 0: the first frame of a change is taken.
        let mut cfg = DetectConfig::new(Rect::new(0, 0, 64, 64));
        cfg.settle_frames = 0;
        let mut d = SliceDetector::new(cfg);
        assert_eq!(d.push(&frame(0, None)), NewSlice);
        assert_eq!(d.push(&frame(0, None)), Same);
        assert_eq!(d.push(&frame(50, None)), NewSlice);
    }
}
