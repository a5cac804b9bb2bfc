//! Results for the PACS (`[dicom.send]`): when a series' verdict is final, a Secondary Capture
//! of its key slice (boxes and text burned in) and a Comprehensive 3D SR (TID 1500) stating the
//! finding are written into the outbox (`STATE/outbox/pending/`), where `pe-sentinel-send` takes
//! them. For a series that was not analysed (intended use), or a patient series judged by demo
//! models, the pair says so and why instead (a text card, no score; `send_not_analysed`). The
//! analyser opens no socket: this module only writes files.
//!
//! [`Outbox::series_final`] is the daemon's one call. It picks the key slice from the journal
//! and hands the job to a worker thread over a bounded channel (the inference loop never waits
//! on this disk work unless 64 results are queued); the worker reads the key slice back from
//! `done/`, builds both objects, and writes each to a temporary file, fsyncs it and renames it
//! into `pending/`. Touches the journal (read), `done/` (read) and the outbox folder.

pub mod elements;
pub mod font;
pub mod picture;
pub mod sc;
pub mod source;
pub mod sr;
pub mod uid;
mod write;

use crate::config::Resolved;
use crate::pipeline::ModelSet;
use crate::preprocess::HuWindow;
use crate::store::journal::{hex, Journal, SeriesRow};
use crate::verdict::SeriesVerdict;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use pe_sentinel_send::config::SendConfig;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

pub const SOFTWARE: &str = concat!("pe-sentinel ", env!("CARGO_PKG_VERSION"));
/// Results waiting for the worker; beyond, `series_final` waits (it never drops one).
const QUEUE: usize = 64;

/// What the result says about the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    Positive,
    Negative,
    /// The series could not be judged (not sent unless `send_not_analysed`).
    NotAnalysed,
}

impl Finding {
    pub fn as_str(self) -> &'static str {
        match self {
            Finding::Positive => "positive",
            Finding::Negative => "negative",
            Finding::NotAnalysed => "not-analysed",
        }
    }
}

/// One model behind the result.
#[derive(Debug, Clone)]
pub struct ModelRef {
    pub role: &'static str,
    pub name: String,
    pub sha256: String,
    /// The manifest's `training_domain` (`synthetic-phantom`, `clinical-ctpa`, `unknown`).
    pub training_domain: &'static str,
}

/// A finished series' result, as the worker receives it.
#[derive(Debug, Clone)]
pub struct Job {
    pub series: String,
    pub finding: Finding,
    pub slices: u32,
    pub suspicious_slices: u32,
    /// The key slice: its file name as dropped, content sha256 (hex), frame, score and boxes.
    pub key_file: String,
    pub key_sha256: String,
    pub key_frame: u32,
    pub key_p: f32,
    pub key_boxes: Vec<[f32; 5]>,
    /// Not analysed: why (the intended-use reasons, or that demo models are loaded).
    pub reasons: Option<String>,
    pub closed_unix_ms: i64,
}

/// Everything the SC and SR say, with the key slice read back.
pub struct Facts {
    pub finding: Finding,
    pub slices: u32,
    pub suspicious_slices: u32,
    pub key_p: f32,
    pub key_boxes: Vec<[f32; 5]>,
    /// Not analysed: why.
    pub reasons: Option<String>,
    pub demo: bool,
    pub models: Vec<ModelRef>,
    /// DA and TM of the verdict (UTC, with TimezoneOffsetFromUTC +0000).
    pub content_date: String,
    pub content_time: String,
    pub source: source::KeySource,
}

impl Facts {
    /// The one-line statement burned in and put in ImageComments.
    pub fn summary_line(&self) -> String {
        let what = match self.finding {
            Finding::Positive => "PE SUSPECTED",
            Finding::Negative => "NO PE FLAGGED",
            Finding::NotAnalysed => {
                return format!("PE-SENTINEL: SERIES NOT ANALYSED ({} SLICES) - NO RESULT ON PE", self.slices)
            }
        };
        format!(
            "PE-SENTINEL: {what} - {} OF {} SLICES SUSPICIOUS, KEY SLICE P {:.2}",
            self.suspicious_slices, self.slices, self.key_p
        )
    }
}

/// Type 2 attributes of the Patient and General Study modules: present, empty when unknown.
pub(crate) fn put_type2(o: &mut InMemDicomObject) {
    let type2: [(Tag, VR); 7] = [
        (tags::PATIENT_NAME, VR::PN),
        (tags::PATIENT_ID, VR::LO),
        (tags::PATIENT_BIRTH_DATE, VR::DA),
        (tags::PATIENT_SEX, VR::CS),
        (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
        (tags::STUDY_ID, VR::SH),
        (tags::ACCESSION_NUMBER, VR::SH),
    ];
    for (t, vr) in type2 {
        if o.get(t).is_none() {
            o.put(DataElement::new(t, vr, PrimitiveValue::Empty));
        }
    }
    if o.get(tags::STUDY_DATE).is_none() {
        o.put(DataElement::new(tags::STUDY_DATE, VR::DA, PrimitiveValue::Empty));
    }
    if o.get(tags::STUDY_TIME).is_none() {
        o.put(DataElement::new(tags::STUDY_TIME, VR::TM, PrimitiveValue::Empty));
    }
    o.put(DataElement::new(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, PrimitiveValue::from("+0000")));
}

/// Settings the worker needs, fixed at start.
#[derive(Clone)]
struct Ctx {
    send: SendConfig,
    outbox: PathBuf,
    done: PathBuf,
    window: HuWindow,
    models: Vec<ModelRef>,
    demo: bool,
}

/// The daemon's handle on the outbox worker.
pub struct Outbox {
    tx: Option<SyncSender<Job>>,
    worker: Option<JoinHandle<()>>,
    send: SendConfig,
}

impl Outbox {
    /// Starts the worker when the profile has `[dicom.send]`; `None` otherwise.
    pub fn start(cfg: &Resolved, models: &ModelSet) -> anyhow::Result<Option<Outbox>> {
        let Some(send) = cfg.dicom().and_then(|d| d.send.clone()) else { return Ok(None) };
        let outbox = pe_sentinel_send::config::outbox_in(cfg.state_dir());
        pe_sentinel_send::outbox::create(&outbox).map_err(|e| {
            anyhow::anyhow!("cannot create the outbox {}: {e}; check the state folder's permissions", outbox.display())
        })?;
        let pre = models.classifier.preprocess();
        let ctx = Ctx {
            send: send.clone(),
            done: cfg.drop_dir().join(crate::source::drop_folder::DONE),
            outbox: outbox.clone(),
            window: HuWindow { center_hu: pre.window_center_hu, width_hu: pre.window_width_hu },
            models: vec![
                ModelRef {
                    role: "classifier",
                    name: models.classifier.model().name.clone(),
                    sha256: models.classifier.model().sha256.clone(),
                    training_domain: models.classifier.model().training_domain.as_str(),
                },
                ModelRef {
                    role: "detector",
                    name: models.detector.model().name.clone(),
                    sha256: models.detector.model().sha256.clone(),
                    training_domain: models.detector.model().training_domain.as_str(),
                },
            ],
            // The rule behind the `demo-model` verdict: NOT FOR DIAGNOSIS follows the manifests.
            demo: crate::eligibility::demo_models_loaded(models),
        };
        let mut written = write::Written::open(&outbox)?;
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let worker = std::thread::Builder::new().name("outbox".into()).spawn(move || {
            for job in rx {
                match write::result(&ctx, &mut written, &job) {
                    Ok(files) if files.is_empty() => {}
                    Ok(files) => log::info!(
                        "series {}: {} result queued for {} ({})",
                        job.series,
                        job.finding.as_str(),
                        ctx.send.peer(),
                        files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
                    ),
                    Err(e) => log::error!("series {}: no result for the PACS: {e}", job.series),
                }
            }
        })?;
        log::info!(
            "results to PACS {} through {} (positives{}{})",
            send.peer(),
            outbox.display(),
            if send.send_negative { ", negatives" } else { "" },
            if send.send_not_analysed { ", not analysed" } else { "" }
        );
        Ok(Some(Outbox { tx: Some(tx), worker: Some(worker), send }))
    }

    /// The daemon's hook where a series' verdict is final (`row`: its journal row, verdict and
    /// reasons as amended by the intended-use gate): queues its result if the verdict is one
    /// `[dicom.send]` sends. Errors are logged (the verdict is in the journal either way).
    ///
    /// `positive` always; `negative` with `send_negative`; `not-analysed` and `demo-model` with
    /// `send_not_analysed`, both as a not-analysed result: a patient series judged by demo models
    /// gets no finding in the PACS, only the statement that it was not analysed for diagnosis.
    pub fn series_final(&self, journal: &Journal, row: &SeriesRow, closed_unix_ms: i64) {
        let series = row.series.as_str();
        let job = match row.verdict {
            SeriesVerdict::Positive => self.finding_job(journal, row, Finding::Positive, closed_unix_ms),
            SeriesVerdict::Negative if self.send.send_negative => {
                self.finding_job(journal, row, Finding::Negative, closed_unix_ms)
            }
            SeriesVerdict::NotAnalysed if self.send.send_not_analysed => {
                let why = row.reasons.clone().unwrap_or_else(|| "not what the models are meant for".into());
                journal.series_skipped(series).map_err(|e| e.to_string()).and_then(|rows| {
                    let (file, sha, frame, _) =
                        rows.into_iter().next().ok_or("no slice of it in the journal's skipped table")?;
                    Ok(not_analysed_job(row, file, sha, frame, why, closed_unix_ms))
                })
            }
            SeriesVerdict::DemoModel if self.send.send_not_analysed => {
                // Not row.reasons: they say whether the series rule was met, which is a finding.
                journal.series_slices(series).map_err(|e| e.to_string()).and_then(|rows| {
                    let key = rows.into_iter().next().ok_or("no slice of it in the journal")?;
                    Ok(not_analysed_job(
                        row,
                        key.record.source_file,
                        hex(&key.record.sha256),
                        key.record.frame,
                        DEMO_MODEL_REASON.to_string(),
                        closed_unix_ms,
                    ))
                })
            }
            _ => return,
        };
        let job = match job {
            Ok(j) => j,
            Err(e) => return log::error!("series {series}: no result for the PACS: {e}"),
        };
        if let Some(tx) = &self.tx {
            if tx.send(job).is_err() {
                log::error!("series {series}: the outbox worker has stopped; no result for the PACS");
            }
        }
    }

    /// A positive or negative result: the key slice is the one with the highest classifier P or
    /// box confidence (for a positive, among the suspicious slices).
    fn finding_job(&self, journal: &Journal, row: &SeriesRow, finding: Finding, closed: i64) -> Result<Job, String> {
        let rows = journal.series_slices(&row.series).map_err(|e| e.to_string())?;
        let score = |b: &[[f32; 5]], p: f32| b.iter().map(|b| b[4]).fold(if p.is_nan() { 0.0 } else { p }, f32::max);
        let key = rows
            .iter()
            .filter(|r| finding != Finding::Positive || r.record.suspicious)
            .max_by(|a, b| score(&a.record.boxes, a.record.p).total_cmp(&score(&b.record.boxes, b.record.p)))
            .ok_or("no slice in the journal to show")?;
        Ok(Job {
            series: row.series.clone(),
            finding,
            slices: row.slices,
            suspicious_slices: row.suspicious_slices,
            key_file: key.record.source_file.clone(),
            key_sha256: hex(&key.record.sha256),
            key_frame: key.record.frame,
            key_p: key.record.p,
            key_boxes: key.record.boxes.clone(),
            reasons: None,
            closed_unix_ms: closed,
        })
    }
}

/// What a not-analysed result says of a patient series judged by demo models.
pub const DEMO_MODEL_REASON: &str = "demo models loaded (training_domain synthetic-phantom): \
     a patient series is not analysed for diagnosis and no finding is reported";

/// A not-analysed result: `file` (a slice of the series, as dropped) names the study and series;
/// no score, no region.
fn not_analysed_job(row: &SeriesRow, file: String, sha: String, frame: u32, why: String, closed: i64) -> Job {
    Job {
        series: row.series.clone(),
        finding: Finding::NotAnalysed,
        slices: row.slices,
        suspicious_slices: 0,
        key_file: file,
        key_sha256: sha,
        key_frame: frame,
        key_p: f32::NAN,
        key_boxes: Vec::new(),
        reasons: Some(why),
        closed_unix_ms: closed,
    }
}

impl Drop for Outbox {
    /// Finishes the results already queued before the daemon exits.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
