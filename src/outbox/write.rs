//! Writing one series' result into `pending/`: read the key slice back (for a series that was not
//! analysed, one slice's header only, and a text card instead of the slice), build the SC and the SR,
//! and put each in place atomically (temporary file, fsync, rename, fsync of the folder), the SC
//! first so its name sorts before the SR that refers to it. `written.log` remembers every SOP
//! Instance UID written, so the same result after a restart is not queued twice. Refuses when
//! the outbox is over `outbox_max_mib`. Touches the outbox folder and reads `done/`.

use super::{picture, sc, source, sr, uid, Ctx, Facts, Finding, Job};
use dicom_dictionary_std::uids;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use pe_sentinel_send::outbox::PENDING;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

const WRITTEN_LOG: &str = "written.log";
/// Side of the text card of a not-analysed result (no slice to show).
const CARD_PX: u32 = 512;

/// SOP Instance UIDs already written to the outbox (`OUTBOX/written.log`, one per line).
pub struct Written {
    path: PathBuf,
    uids: HashSet<String>,
}

impl Written {
    pub fn open(outbox: &Path) -> anyhow::Result<Written> {
        let path = outbox.join(WRITTEN_LOG);
        let uids = match std::fs::read_to_string(&path) {
            Ok(t) => t.lines().filter_map(|l| l.split('\t').nth(1)).map(str::to_string).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
            Err(e) => anyhow::bail!("cannot read {}: {e}; check the outbox folder's permissions", path.display()),
        };
        Ok(Written { path, uids })
    }

    fn contains(&self, uid: &str) -> bool {
        self.uids.contains(uid)
    }

    fn add(&mut self, uid: &str, file: &str) -> Result<(), String> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
        writeln!(f, "{}\t{uid}\t{file}", unix_ms())
            .and_then(|_| f.sync_data())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        self.uids.insert(uid.to_string());
        Ok(())
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// DA and TM (UTC) of a Unix time in ms.
fn da_tm(ms: i64) -> (String, String) {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = crate::civil::civil_date(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    (format!("{y:04}{m:02}{d:02}"), format!("{:02}{:02}{:02}", s / 3600, s % 3600 / 60, s % 60))
}

/// Writes the job's SC and SR into `pending/`; returns the files written (none if they were
/// written before).
pub(super) fn result(ctx: &Ctx, written: &mut Written, job: &Job) -> Result<Vec<PathBuf>, String> {
    let lower = job.key_file.to_ascii_lowercase();
    if [".png", ".jpg", ".jpeg"].iter().any(|e| lower.ends_with(e)) {
        log::info!("series {}: a raster series has no DICOM study to attach a result to; nothing sent", job.series);
        return Ok(Vec::new());
    }
    let path = source::find(&ctx.done, &job.key_file, &job.key_sha256).ok_or_else(|| {
        format!("the key slice {} (sha256 {}) is no longer under {}", job.key_file, job.key_sha256, ctx.done.display())
    })?;
    let not_analysed = job.finding == Finding::NotAnalysed;
    // A slice that was not analysed is never decoded: its header names the study and series.
    let src =
        if not_analysed { source::read_header(&path, job.key_frame)? } else { source::read(&path, job.key_frame)? };
    // What the result states: the same statement gets the same UIDs.
    let statement = format!(
        "{}|{}|{}|{}|{}|{}|{:?}|{}|{}",
        job.series,
        job.finding.as_str(),
        job.slices,
        job.suspicious_slices,
        src.sop_instance,
        job.key_p,
        job.key_boxes,
        ctx.models.iter().map(|m| m.sha256.as_str()).collect::<Vec<_>>().join(","),
        job.reasons.as_deref().unwrap_or("")
    );
    let sc_uid = uid::derived(&[&statement, "sc"]);
    let sr_uid = uid::derived(&[&statement, "sr"]);
    if written.contains(&sc_uid) && written.contains(&sr_uid) {
        log::info!("series {}: this result was queued before; not again", job.series);
        return Ok(Vec::new());
    }
    let (width, height) = src.slice.as_ref().map_or((CARD_PX, CARD_PX), |s| (s.width, s.height));
    let budget = ctx.send.outbox_max_bytes();
    let used = pe_sentinel_send::outbox::size_bytes(&ctx.outbox);
    let needed = u64::from(width) * u64::from(height) * 3 + 64 * 1024;
    if used + needed > budget {
        return Err(format!(
            "the outbox {} holds {used} bytes, and this result would pass its limit of {} MiB ([dicom.send] outbox_max_mib); \
             is pe-sentinel-send running and the PACS reachable? Parked objects in outbox/parked/ count too",
            ctx.outbox.display(),
            ctx.send.outbox_max_mib
        ));
    }
    let (content_date, content_time) = da_tm(job.closed_unix_ms);
    let facts = Facts {
        finding: job.finding,
        slices: job.slices,
        suspicious_slices: job.suspicious_slices,
        key_p: job.key_p,
        key_boxes: job.key_boxes.clone(),
        reasons: job.reasons.clone(),
        demo: ctx.demo,
        models: ctx.models.clone(),
        content_date,
        content_time,
        source: src,
    };
    let mut lines = Vec::new();
    if facts.demo {
        lines.push(picture::NOT_FOR_DIAGNOSIS.to_string());
    }
    lines.push(facts.summary_line());
    let pic = match &facts.source.slice {
        Some(slice) => {
            let boxes: Vec<[f32; 4]> = if facts.finding == Finding::Positive {
                facts.key_boxes.iter().map(|b| [b[0], b[1], b[2], b[3]]).collect()
            } else {
                Vec::new()
            };
            picture::render(slice, ctx.window, &boxes, &lines)
        }
        None => {
            lines.push(String::new());
            if let Some(label) = &facts.source.series_label {
                lines.push(format!("SERIES {label}"));
            }
            lines.push(format!("WHY: {}", facts.reasons.as_deref().unwrap_or("")));
            lines.push(String::new());
            lines.push("NO PE RESULT FOR THIS SERIES: READ IT AS USUAL".into());
            picture::card(width, height, &lines)
        }
    };
    let sc_series = uid::derived(&[&statement, "sc-series"]);
    let sc_obj = sc::build(&facts, &pic, &sc_uid, &sc_series);
    let sc_ref = super::elements::SopRef { class: sc::SC_CLASS.into(), instance: sc_uid.clone(), frame: None };
    let device_uid = uid::derived(&["pe-sentinel device", &ctx.send.calling_ae]);
    let tracking_uid = uid::derived(&[&statement, "tracking"]);
    let sr_series = uid::derived(&[&statement, "sr-series"]);
    let sr_obj = sr::build(
        &facts,
        &sr::SrRefs {
            sop_instance: &sr_uid,
            series_uid: &sr_series,
            sc: Some((&sc_ref, &sc_series)),
            device_uid: &device_uid,
            tracking_uid: &tracking_uid,
        },
    );
    let stem = format!("{:013}-{}", job.closed_unix_ms.max(0), &uid::derived(&[&statement])[5..17]);
    let mut files = Vec::new();
    for (obj, uid, kind) in [(sc_obj, &sc_uid, "1-sc"), (sr_obj, &sr_uid, "2-sr")] {
        if written.contains(uid) {
            continue;
        }
        let name = format!("{stem}-{kind}.dcm");
        let path = place(&ctx.outbox, &name, obj, &ctx.send.calling_ae)?;
        written.add(uid, &name)?;
        files.push(path);
    }
    Ok(files)
}

/// Writes `obj` as `pending/NAME` through `pending/.NAME.tmp`, fsynced before and after the rename.
fn place(outbox: &Path, name: &str, obj: InMemDicomObject, calling_ae: &str) -> Result<PathBuf, String> {
    let dir = outbox.join(PENDING);
    let tmp = dir.join(format!(".{name}.tmp"));
    let to = dir.join(name);
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .source_application_entity_title(calling_ae.trim()),
        )
        .map_err(|e| format!("cannot build the file meta of {name}: {e}"))?;
    let r = (|| -> Result<(), String> {
        let mut f = std::fs::File::create(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        {
            let mut w = std::io::BufWriter::new(&mut f);
            file.write_all(&mut w).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
            w.flush().map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        }
        f.sync_all().map_err(|e| format!("cannot fsync {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &to).map_err(|e| format!("cannot rename {} to {}: {e}", tmp.display(), to.display()))?;
        std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| format!("cannot fsync {}: {e}", dir.display()))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.map(|()| to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicom_date_and_time_in_utc() {
        assert_eq!(da_tm(0), ("19700101".into(), "000000".into()));
        // 2026-12-06 20:45:07 UTC
        assert_eq!(da_tm(1_796_589_907_000), ("20261206".into(), "204507".into()));
    }
}
