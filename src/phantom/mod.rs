//! `pe-sentinel phantom`: synthetic CT pulmonary angiography series with known emboli, for the
//! shipped models' training data, the daemon's end-to-end tests, accuracy evaluation, the latency
//! benchmark and a field engineer's self-test. Every series is a coherent 3D scene (`anatomy`)
//! cut into axial slices (`render`); output per series is DICOM CT files, console-windowed PNGs,
//! darknet/YOLO label files and a truth JSON. The same seed and arguments give byte-identical
//! output. Writes only under the output folder it is given.

pub mod anatomy;
pub mod dicom_writer;
pub mod geometry;
pub mod layout;
pub mod render;
pub mod rng;

use anatomy::{EmbolusKind, Level, Scene};
use render::{Canvas, PixelBox, SIZE};
use rng::{mix, Rng};
use serde::Serialize;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Bumped whenever the same seed would render different pixels.
pub const GENERATOR_VERSION: &str = concat!("pe-sentinel phantom ", env!("CARGO_PKG_VERSION"), " (scene v1)");
/// The console window the PNGs are rendered with (CTPA: width 700, level 100).
pub const PNG_WINDOW_CENTER: f32 = 100.0;
pub const PNG_WINDOW_WIDTH: f32 = 700.0;
/// Upper bounds on a single run, so a typo cannot fill a disk.
pub const MAX_SERIES: u32 = 10_000;
pub const MAX_SLICES: u32 = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Dicom,
    Png,
    Both,
}

impl Format {
    fn dicom(self) -> bool {
        matches!(self, Format::Dicom | Format::Both)
    }
    fn png(self) -> bool {
        matches!(self, Format::Png | Format::Both)
    }
}

/// Options of one phantom run; `PhantomOptions::new` gives the documented defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PhantomOptions {
    pub out: PathBuf,
    pub series: u32,
    pub slices: u32,
    pub seed: u64,
    pub format: Format,
    /// Fraction of series that contain emboli (the rest have none).
    pub pe_fraction: f32,
    /// Also write each slice's generated HU as raw little-endian f32 (`hu/`), for cross-checks.
    pub emit_hu: bool,
    /// Worker threads (series are rendered in parallel); 0 means one per core.
    pub threads: usize,
    /// The kind of series the DICOM headers describe (CTPA, or an ineligible kind for tests).
    pub acquisition: dicom_writer::Acquisition,
    /// Counts written slices (src/progress.rs); hidden unless the caller makes it visible.
    pub progress: indicatif::ProgressBar,
}

impl PhantomOptions {
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            series: 3,
            slices: 64,
            seed: 1,
            format: Format::Both,
            pe_fraction: 0.67,
            emit_hu: false,
            threads: 0,
            acquisition: dicom_writer::Acquisition::Ctpa,
            progress: indicatif::ProgressBar::hidden(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PhantomError {
    #[error("invalid {what}: {found}; expected {expected}")]
    InvalidArgument { what: &'static str, found: String, expected: &'static str },
    #[error(
        "cannot write {path}: {err}; check that the folder exists or can be created, is writable and has free space"
    )]
    Io { path: PathBuf, err: std::io::Error },
    #[error("cannot encode PNG {path}: {err}")]
    Png { path: PathBuf, err: image::ImageError },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PhantomError + '_ {
    move |err| PhantomError::Io { path: path.to_path_buf(), err }
}

/// What a run wrote (also saved as `phantom.json`).
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub generator: &'static str,
    pub seed: u64,
    pub slices: u32,
    pub pe_fraction: f32,
    pub format: Format,
    /// The kind of series the DICOM headers describe (`ctpa` unless asked otherwise).
    pub acquisition: dicom_writer::Acquisition,
    pub series: Vec<SeriesSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeriesSummary {
    pub folder: String,
    pub positive: bool,
    pub series_instance_uid: String,
    pub emboli: usize,
    pub labelled_slices: usize,
}

/// Truth for one series (`truth.json`).
#[derive(Debug, Clone, Serialize)]
pub struct SeriesTruth {
    pub generator: &'static str,
    pub run_seed: u64,
    pub series_index: u32,
    pub series_seed: u64,
    pub folder: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub positive: bool,
    pub slices: u32,
    pub rows: usize,
    pub columns: usize,
    pub pixel_spacing_mm: f64,
    pub slice_thickness_mm: f64,
    pub noise_sigma_hu: f64,
    pub window_center: f32,
    pub window_width: f32,
    pub confounders: Confounders,
    pub emboli: Vec<EmbolusTruth>,
    pub slice_labels: Vec<SliceTruth>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Confounders {
    pub ground_glass: usize,
    pub consolidation: usize,
    pub mixing_artefact: bool,
    pub contrast_streaks: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmbolusTruth {
    pub id: usize,
    pub kind: EmbolusKind,
    pub level: Level,
    pub diameter_mm: f64,
    pub length_mm: f64,
    pub hu: f64,
    pub axis_mm: [[f64; 3]; 2],
    pub z_extent_mm: [f64; 2],
    pub first_instance: Option<u32>,
    pub last_instance: Option<u32>,
    pub labelled_slices: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SliceTruth {
    pub instance: u32,
    pub file: String,
    pub z_mm: f64,
    pub boxes: Vec<PixelBox>,
}

fn r3(v: f32) -> f64 {
    (f64::from(v) * 1000.0).round() / 1000.0
}

/// One series: its scene, its random stream and its identifiers.
pub struct SeriesPlan {
    pub index: u32,
    pub seed: u64,
    pub positive: bool,
    pub scene: Scene,
    rng: Rng,
    pub study_uid: String,
    pub series_uid: String,
    frame_uid: String,
}

impl SeriesPlan {
    pub fn new(run_seed: u64, index: u32, slices: u32, positive: bool) -> Self {
        let seed = mix(run_seed ^ mix(u64::from(index) + 1));
        let rng = Rng::new(seed);
        let scene = anatomy::build(&rng, slices, positive);
        let mut ids = rng.fork(99);
        let study_uid = dicom_writer::uid_from(ids.next_u64(), ids.next_u64());
        let series_uid = dicom_writer::uid_from(ids.next_u64(), ids.next_u64());
        let frame_uid = dicom_writer::uid_from(ids.next_u64(), ids.next_u64());
        Self { index, seed, positive, scene, rng, study_uid, series_uid, frame_uid }
    }

    /// Renders slice `k` (0-based from the most cranial) into `canvas.hu`, truth into `boxes`.
    pub fn render(&self, k: u32, canvas: &mut Canvas, boxes: &mut Vec<PixelBox>) {
        render::render_slice(&self.scene, &self.rng, k, canvas, boxes);
    }

    fn sop_uid(&self, k: u32) -> String {
        let mut r = self.rng.fork(10_000 + u64::from(k));
        dicom_writer::uid_from(r.next_u64(), r.next_u64())
    }
}

/// Writes series `index` of a run (`seed`, `slices` per series; `positive` as
/// [`positive_series`] says) as ONE multi-frame DICOM file at `path`: the same pixels, series UID
/// and geometry as the single-slice files `generate` writes, with one InstanceNumber (1) and
/// `NumberOfFrames` = `slices`, as Enhanced CT objects and some exports carry a series. With
/// `per_frame_positions` each frame's ImagePositionPatient goes in the Per-frame Functional Groups
/// Sequence; without, the file says nothing of where its frames lie. Frames are rendered and
/// written one at a time (memory: one slice).
pub fn write_multiframe_series(
    seed: u64,
    index: u32,
    slices: u32,
    positive: bool,
    per_frame_positions: bool,
    path: &Path,
) -> Result<(), PhantomError> {
    let plan = SeriesPlan::new(seed, index, slices, positive);
    let scene = &plan.scene;
    let grid = render::Grid::new(scene.pixel_spacing);
    let positions: Vec<[f32; 3]> = (0..slices).map(|k| [grid.x(0), grid.x(0), scene.slice_z(k)]).collect();
    let description = format!("CTPA phantom (synthetic) seed {seed} series {index}");
    let patient_id = format!("PHANTOM-{seed}-{index:03}");
    let patient_name = format!("PHANTOM^S{seed}^{index:03}");
    let header = dicom_writer::CtSlice {
        study_uid: &plan.study_uid,
        series_uid: &plan.series_uid,
        sop_uid: &plan.sop_uid(0),
        frame_uid: &plan.frame_uid,
        series_number: index + 1,
        instance_number: 1,
        series_description: &description,
        patient_id: &patient_id,
        patient_name: &patient_name,
        position_mm: positions[0],
        pixel_spacing_mm: scene.pixel_spacing,
        slice_thickness_mm: scene.slice_thickness,
        window_center: PNG_WINDOW_CENTER,
        window_width: PNG_WINDOW_WIDTH,
        rows: SIZE as u16,
        columns: SIZE as u16,
        pixels: &[],
        acquisition: dicom_writer::Acquisition::Ctpa,
    };
    let m = dicom_writer::MultiFrame {
        frames: slices,
        positions_mm: if per_frame_positions { Some(&positions) } else { None },
    };
    let mut bytes = Vec::new();
    dicom_writer::encode_multiframe_header(&header, &m, &mut bytes);
    let mut f = BufWriter::new(fs::File::create(path).map_err(io_err(path))?);
    f.write_all(&bytes).map_err(io_err(path))?;
    let (mut canvas, mut boxes, mut stored) = (Canvas::default(), Vec::new(), vec![0u16; SIZE * SIZE]);
    for k in 0..slices {
        plan.render(k, &mut canvas, &mut boxes);
        dicom_writer::store_hu(&canvas.hu, &mut stored);
        bytes.clear();
        bytes.extend(stored.iter().flat_map(|v| v.to_le_bytes()));
        f.write_all(&bytes).map_err(io_err(path))?;
    }
    f.flush().map_err(io_err(path))
}

/// Which series of a run carry emboli: exactly round(fraction x series), chosen by the seed.
pub fn positive_series(seed: u64, series: u32, fraction: f32) -> Vec<bool> {
    let n_pos = ((fraction * series as f32).round() as u32).min(series);
    let mut order: Vec<u32> = (0..series).collect();
    let mut r = Rng::new(seed).fork(0xF00D);
    for i in (1..order.len()).rev() {
        let j = r.below(i as u32 + 1) as usize;
        order.swap(i, j);
    }
    let mut pos = vec![false; series as usize];
    for &i in order.iter().take(n_pos as usize) {
        pos[i as usize] = true;
    }
    pos
}

/// Windowed 8-bit gray of an HU value, as a CTPA console shows it.
pub fn window_gray(hu: f32, center: f32, width: f32) -> u8 {
    (((hu - (center - 0.5 * width)) / width * 255.0).clamp(0.0, 255.0)).round() as u8
}

/// Name stem of slice k (1-based instance numbers, zero-padded).
pub fn slice_stem(instance: u32, slices: u32) -> String {
    let width = slices.to_string().len().max(4);
    format!("slice-{instance:0width$}")
}

pub fn validate(opts: &PhantomOptions) -> Result<(), PhantomError> {
    if opts.series == 0 || opts.series > MAX_SERIES {
        return Err(PhantomError::InvalidArgument {
            what: "--series",
            found: opts.series.to_string(),
            expected: "a count from 1 to 10000",
        });
    }
    if opts.slices == 0 || opts.slices > MAX_SLICES {
        return Err(PhantomError::InvalidArgument {
            what: "--slices",
            found: opts.slices.to_string(),
            expected: "a count from 1 to 2000",
        });
    }
    if !(0.0..=1.0).contains(&opts.pe_fraction) || opts.pe_fraction.is_nan() {
        return Err(PhantomError::InvalidArgument {
            what: "--pe-fraction",
            found: opts.pe_fraction.to_string(),
            expected: "a fraction from 0 to 1",
        });
    }
    Ok(())
}

/// Generates the whole run into `opts.out`.
pub fn generate(opts: &PhantomOptions) -> Result<RunSummary, PhantomError> {
    validate(opts)?;
    fs::create_dir_all(&opts.out).map_err(io_err(&opts.out))?;
    let positives = positive_series(opts.seed, opts.series, opts.pe_fraction);
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(opts.series as usize)
    .max(1);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<SeriesSummary, PhantomError>>>> =
        Mutex::new((0..opts.series).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut w = SeriesWriter::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= opts.series as usize {
                        break;
                    }
                    let res = w.write_series(opts, i as u32, positives[i]);
                    let failed = res.is_err();
                    if let Ok(mut g) = results.lock() {
                        g[i] = Some(res);
                    }
                    if failed {
                        // Stop handing out work; other workers finish their series.
                        next.store(usize::MAX / 2, Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut series = Vec::with_capacity(results.len());
    for r in results.into_iter().flatten() {
        series.push(r?);
    }
    let summary = RunSummary {
        generator: GENERATOR_VERSION,
        seed: opts.seed,
        slices: opts.slices,
        pe_fraction: opts.pe_fraction,
        format: opts.format,
        acquisition: opts.acquisition,
        series,
    };
    let path = opts.out.join("phantom.json");
    write_json(&path, &summary)?;
    Ok(summary)
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), PhantomError> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| PhantomError::Io { path: path.to_path_buf(), err: e.into() })?;
    text.push('\n');
    fs::write(path, text).map_err(io_err(path))
}

/// Per-thread buffers for writing series.
struct SeriesWriter {
    canvas: Canvas,
    boxes: Vec<PixelBox>,
    stored: Vec<u16>,
    gray: Vec<u8>,
    dicom: Vec<u8>,
}

impl SeriesWriter {
    fn new() -> Self {
        Self {
            canvas: Canvas::default(),
            boxes: Vec::new(),
            stored: vec![0; SIZE * SIZE],
            gray: vec![0; SIZE * SIZE],
            dicom: Vec::new(),
        }
    }

    fn write_series(
        &mut self,
        opts: &PhantomOptions,
        index: u32,
        positive: bool,
    ) -> Result<SeriesSummary, PhantomError> {
        let plan = SeriesPlan::new(opts.seed, index, opts.slices, positive);
        let folder = format!("series-{index:03}");
        let dir = opts.out.join(&folder);
        let sub = |name: &str| dir.join(name);
        let mut dirs = vec![sub("labels")];
        if opts.format.dicom() {
            dirs.push(sub("dicom"));
        }
        if opts.format.png() {
            dirs.push(sub("png"));
        }
        if opts.emit_hu {
            dirs.push(sub("hu"));
        }
        for d in &dirs {
            fs::create_dir_all(d).map_err(io_err(d))?;
        }
        let scene = &plan.scene;
        let description = format!("CTPA phantom (synthetic) seed {} series {index}", opts.seed);
        let patient_id = format!("PHANTOM-{}-{index:03}", opts.seed);
        let patient_name = format!("PHANTOM^S{}^{index:03}", opts.seed);
        let mut slice_labels = Vec::with_capacity(opts.slices as usize);
        let mut per_embolus: Vec<(Option<u32>, Option<u32>, usize)> = vec![(None, None, 0); scene.emboli.len()];
        for k in 0..opts.slices {
            opts.progress.inc(1);
            let instance = k + 1;
            let stem = slice_stem(instance, opts.slices);
            plan.render(k, &mut self.canvas, &mut self.boxes);
            dicom_writer::store_hu(&self.canvas.hu, &mut self.stored);
            let z = scene.slice_z(k);
            if opts.format.dicom() {
                let grid = render::Grid::new(scene.pixel_spacing);
                let slice = dicom_writer::CtSlice {
                    study_uid: &plan.study_uid,
                    series_uid: &plan.series_uid,
                    sop_uid: &plan.sop_uid(k),
                    frame_uid: &plan.frame_uid,
                    series_number: index + 1,
                    instance_number: instance,
                    series_description: &description,
                    patient_id: &patient_id,
                    patient_name: &patient_name,
                    position_mm: [grid.x(0), grid.x(0), z],
                    pixel_spacing_mm: scene.pixel_spacing,
                    slice_thickness_mm: scene.slice_thickness,
                    window_center: PNG_WINDOW_CENTER,
                    window_width: PNG_WINDOW_WIDTH,
                    rows: SIZE as u16,
                    columns: SIZE as u16,
                    pixels: &self.stored,
                    acquisition: opts.acquisition,
                };
                let path = sub("dicom").join(format!("{stem}.dcm"));
                dicom_writer::encode(&slice, &mut self.dicom);
                fs::write(&path, &self.dicom).map_err(io_err(&path))?;
            }
            if opts.format.png() {
                for (g, &s) in self.gray.iter_mut().zip(&self.stored) {
                    *g = window_gray(
                        f32::from(s) + dicom_writer::RESCALE_INTERCEPT,
                        PNG_WINDOW_CENTER,
                        PNG_WINDOW_WIDTH,
                    );
                }
                let path = sub("png").join(format!("{stem}.png"));
                write_png(&path, &self.gray)?;
            }
            if opts.emit_hu {
                let path = sub("hu").join(format!("{stem}.f32"));
                let mut f = BufWriter::new(fs::File::create(&path).map_err(io_err(&path))?);
                for v in &self.canvas.hu {
                    f.write_all(&v.to_le_bytes()).map_err(io_err(&path))?;
                }
                f.flush().map_err(io_err(&path))?;
            }
            let path = sub("labels").join(format!("{stem}.txt"));
            let mut text = String::new();
            for b in &self.boxes {
                let n = SIZE as f64;
                let (x0, y0, x1, y1) = (f64::from(b.x0), f64::from(b.y0), f64::from(b.x1), f64::from(b.y1));
                text.push_str(&format!(
                    "0 {:.6} {:.6} {:.6} {:.6}\n",
                    (x0 + x1) / 2.0 / n,
                    (y0 + y1) / 2.0 / n,
                    (x1 - x0) / n,
                    (y1 - y0) / n
                ));
                let e = &mut per_embolus[b.embolus];
                e.0 = Some(e.0.unwrap_or(instance));
                e.1 = Some(instance);
                e.2 += 1;
            }
            fs::write(&path, text).map_err(io_err(&path))?;
            slice_labels.push(SliceTruth { instance, file: stem, z_mm: r3(z), boxes: self.boxes.clone() });
        }
        let labelled = slice_labels.iter().filter(|s| !s.boxes.is_empty()).count();
        let emboli = scene
            .emboli
            .iter()
            .enumerate()
            .map(|(id, e)| {
                let (lo, hi) = e.shape.z_extent();
                let p = |v: geometry::V3| [r3(v.x), r3(v.y), r3(v.z)];
                EmbolusTruth {
                    id,
                    kind: e.kind,
                    level: e.level,
                    diameter_mm: r3(
                        2.0 * e.shape.r.min(e.hosts.iter().map(|&h| scene.arteries[h].seg.r).fold(0.0, f32::max))
                    ),
                    length_mm: r3(e.shape.length() + 2.0 * e.shape.r),
                    hu: r3(e.hu),
                    axis_mm: [p(e.shape.a), p(e.shape.b)],
                    z_extent_mm: [r3(lo), r3(hi)],
                    first_instance: per_embolus[id].0,
                    last_instance: per_embolus[id].1,
                    labelled_slices: per_embolus[id].2,
                }
            })
            .collect();
        let truth = SeriesTruth {
            generator: GENERATOR_VERSION,
            run_seed: opts.seed,
            series_index: index,
            series_seed: plan.seed,
            folder: folder.clone(),
            study_instance_uid: plan.study_uid.clone(),
            series_instance_uid: plan.series_uid.clone(),
            positive: labelled > 0,
            slices: opts.slices,
            rows: SIZE,
            columns: SIZE,
            pixel_spacing_mm: r3(scene.pixel_spacing),
            slice_thickness_mm: r3(scene.slice_thickness),
            noise_sigma_hu: r3(scene.noise_sigma),
            window_center: PNG_WINDOW_CENTER,
            window_width: PNG_WINDOW_WIDTH,
            confounders: Confounders {
                ground_glass: scene.opacities.iter().filter(|o| o.hu < -300.0).count(),
                consolidation: scene.opacities.iter().filter(|o| o.hu >= -300.0).count(),
                mixing_artefact: !scene.mixing.is_empty(),
                contrast_streaks: scene.streaks,
            },
            emboli,
            slice_labels,
        };
        write_json(&dir.join("truth.json"), &truth)?;
        Ok(SeriesSummary {
            folder,
            positive: labelled > 0,
            series_instance_uid: plan.series_uid,
            emboli: scene.emboli.len(),
            labelled_slices: labelled,
        })
    }
}

fn write_png(path: &Path, gray: &[u8]) -> Result<(), PhantomError> {
    use image::ImageEncoder;
    let file = fs::File::create(path).map_err(io_err(path))?;
    let w = BufWriter::new(file);
    image::codecs::png::PngEncoder::new(w)
        .write_image(gray, SIZE as u32, SIZE as u32, image::ExtendedColorType::L8)
        .map_err(|err| PhantomError::Png { path: path.to_path_buf(), err })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_fraction_is_exact() {
        let p = positive_series(5, 10, 0.3);
        assert_eq!(p.iter().filter(|&&b| b).count(), 3);
        assert_eq!(positive_series(5, 10, 0.3), p);
        assert!(positive_series(5, 4, 0.0).iter().all(|&b| !b));
        assert!(positive_series(5, 4, 1.0).iter().all(|&b| b));
    }

    #[test]
    fn window_maps_the_ctpa_range() {
        assert_eq!(window_gray(-250.0, 100.0, 700.0), 0);
        assert_eq!(window_gray(450.0, 100.0, 700.0), 255);
        assert_eq!(window_gray(100.0, 100.0, 700.0), 128);
        assert_eq!(window_gray(-1000.0, 100.0, 700.0), 0);
    }

    #[test]
    fn bad_counts_are_refused() {
        let mut o = PhantomOptions::new("/tmp/unused");
        o.series = 0;
        assert!(matches!(validate(&o), Err(PhantomError::InvalidArgument { what: "--series", .. })));
        o.series = 1;
        o.slices = 0;
        assert!(matches!(validate(&o), Err(PhantomError::InvalidArgument { what: "--slices", .. })));
        o.slices = 1;
        o.pe_fraction = 1.5;
        assert!(matches!(validate(&o), Err(PhantomError::InvalidArgument { what: "--pe-fraction", .. })));
    }
}
