//! `pe-sentinel check`: what an installer runs before starting the service. Loads the board
//! profile, verifies both model files against their manifests, opens the profile's engine (and
//! says which and why), times five warm-up slices against the latency budget, and probes the drop
//! and state folders and the journal.
//!
//! Touches: the profile and model files (read), one probe file created and removed in each of the
//! drop and state folders, the journal (read-only integrity check). Prints nothing: returns the
//! report's lines for the binary to print.
use std::path::Path;
use std::time::Instant;

use crate::config::Resolved;
use crate::pipeline::{ModelSet, Pipeline};
use crate::store::journal::Journal;

/// The lines `check` prints, in order, and how many of them are problems.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub problems: usize,
}

impl Report {
    fn ok(&mut self, what: String) {
        self.lines.push(format!("ok      {what}"));
    }

    fn problem(&mut self, what: String) {
        self.lines.push(format!("PROBLEM {what}"));
        self.problems += 1;
    }

    /// A line as is (warnings, details under the line before).
    fn note(&mut self, line: String) {
        self.lines.push(line);
    }

    /// The closing line.
    pub fn verdict(&self) -> String {
        if self.problems == 0 {
            "check passed".to_string()
        } else {
            format!("check found {} problem(s)", self.problems)
        }
    }
}

/// Checks the board profile at `path` and everything it names.
pub fn run(path: &Path) -> Report {
    let mut r = Report::default();
    let cfg = match Resolved::load(path, None, None) {
        Ok(c) => c,
        Err(e) => {
            r.problem(format!("{e}"));
            return r;
        }
    };
    r.ok(format!("profile {} ({})", path.display(), cfg.board().name));
    r.ok(format!(
        "engine {}, precision {}, {} thread(s)",
        cfg.engine().kind.as_str(),
        cfg.engine().precision.as_str(),
        cfg.engine().threads
    ));
    if let Err(e) = models(&cfg, &mut r) {
        r.problem(e);
    }
    for (what, dir) in [("drop folder", cfg.drop_dir()), ("state folder", cfg.state_dir())] {
        let probe = dir.join(".pe-sentinel-check");
        let written = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&probe, b"x"))
            .and_then(|_| std::fs::remove_file(&probe));
        match written {
            Ok(()) => r.ok(format!("{what} {} is writable", dir.display())),
            Err(e) => {
                r.problem(format!("{what} {}: {e}; create it and give the daemon's user write access", dir.display()))
            }
        }
    }
    let jp = Journal::path_in(cfg.state_dir());
    if jp.exists() {
        match Journal::open(&jp).and_then(|j| j.integrity_check()) {
            Ok(true) => r.ok(format!("journal {} passes integrity_check", jp.display())),
            Ok(false) => {
                r.problem(format!("journal {} fails integrity_check; move it aside and restart", jp.display()))
            }
            Err(e) => r.problem(format!("{e}")),
        }
    }
    r
}

/// The models, the engine and the warm-up slices; the first failure ends the chain.
fn models(cfg: &Resolved, r: &mut Report) -> Result<(), String> {
    let models = ModelSet::load(cfg.classifier_manifest(), cfg.detector_manifest()).map_err(|e| e.to_string())?;
    for m in [&models.classifier, &models.detector] {
        r.ok(format!("model {} ({}): sha256 {} matches", m.model().name, m.path().display(), m.model().sha256));
        for w in m.warnings() {
            r.note(format!("warning {}: {w}", m.path().display()));
        }
    }
    let gate = crate::eligibility::gate_for(cfg.eligibility(), &models);
    for (warn, line) in crate::eligibility::describe(&gate, &models) {
        if warn {
            r.note(format!("warning {line}"));
        } else {
            r.ok(line);
        }
    }
    let t = Instant::now();
    let (cls, det, choice) = crate::engine::open(cfg, &models).map_err(|e| e.to_string())?;
    r.ok(format!("{choice}"));
    for a in &choice.looked {
        r.note(format!("        looked at {a}"));
    }
    let mut pl = Pipeline::with_engines(&models, cls, det).map_err(|e| e.to_string())?;
    r.ok(format!("engine {} loaded and warmed up in {} ms", pl.engine_name(), t.elapsed().as_millis()));
    pl.apply_profile(cfg);
    let s = crate::bench::warmup_probe(&mut pl, 5).map_err(|e| format!("warm-up slice failed: {e:#}"))?;
    let budget = cfg.budget().budget_ms;
    if s.p50_ms > f64::from(budget) {
        r.note(format!(
            "warning: models alone take {:.1} ms per slice (median of 5 warm-up runs, max {:.1} ms), over the {budget} ms budget before decode and store; every slice will miss it: raise budget.budget_ms, use a faster engine or precision, or set budget.cascade_gate",
            s.p50_ms, s.max_ms
        ));
    } else {
        r.ok(format!(
            "models take {:.1} ms per slice (median of 5 warm-up runs, max {:.1} ms) of the {budget} ms budget",
            s.p50_ms, s.max_ms
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_profile_is_one_problem_naming_the_file() {
        let r = run(Path::new("/nonexistent/pe-sentinel-profile.toml"));
        assert_eq!(r.problems, 1, "{:?}", r.lines);
        assert!(r.lines[0].starts_with("PROBLEM ") && r.lines[0].contains("/nonexistent/pe-sentinel-profile.toml"));
        assert_eq!(r.verdict(), "check found 1 problem(s)");
    }

    #[test]
    fn an_unwritable_state_folder_is_a_problem_and_the_rest_still_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("a-file");
        std::fs::write(&blocker, b"x").expect("write");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let profile = std::fs::read_to_string(root.join("board/x86-cpu.toml"))
            .expect("profile")
            .replace("dir = \"../models\"", &format!("dir = \"{}\"", root.join("models").display()))
            .replace(
                "drop_dir = \"/var/lib/pe-sentinel/drop\"",
                &format!("drop_dir = \"{}\"", dir.path().join("drop").display()),
            )
            .replace(
                "state_dir = \"/var/lib/pe-sentinel\"",
                &format!("state_dir = \"{}\"", blocker.join("state").display()),
            );
        let path = dir.path().join("p.toml");
        std::fs::write(&path, profile).expect("write profile");
        let r = run(&path);
        assert_eq!(r.problems, 1, "{:#?}", r.lines);
        assert!(r.lines.iter().any(|l| l.starts_with("PROBLEM state folder")), "{:#?}", r.lines);
        assert!(r.lines.iter().any(|l| l.starts_with("ok      drop folder")), "{:#?}", r.lines);
        // The models and the warm-up still ran (a loaded CI box may take it over the budget).
        assert!(
            r.lines.iter().any(|l| l.starts_with("ok      models take") || l.starts_with("warning: models alone")),
            "{:#?}",
            r.lines
        );
    }
}
