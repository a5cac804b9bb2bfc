//! The man pages and shell completions of the command line, generated from its clap definition
//! (so they never drift from `--help`): `pe-sentinel.1` plus one `pe-sentinel-<command>.1` per
//! visible subcommand (roff, by clap_mangen), and completions for bash, zsh and fish (by
//! clap_complete). `scripts/build-deb.sh` runs the hidden `pe-sentinel generate-docs --out DIR`
//! and ships the files (docs/platform.md). Writes only under the folder it is given.

use std::path::{Path, PathBuf};

/// Writes the man pages into `out/man1/` and the completions into `out/completions/`; returns the
/// files written.
pub fn write_all(cmd: clap::Command, out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut cmd = cmd;
    cmd.build();
    let (man, comp) = (out.join("man1"), out.join("completions"));
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&comp)?;
    let mut written = Vec::new();
    let name = cmd.get_name().to_string();
    let mut page = |c: &clap::Command, file: String| -> std::io::Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c.clone()).title(file.trim_end_matches(".1").to_uppercase()).render(&mut buf)?;
        let p = man.join(file);
        std::fs::write(&p, buf)?;
        written.push(p);
        Ok(())
    };
    page(&cmd, format!("{name}.1"))?;
    // Not clap's own `help` subcommand: `--help` and the main page cover it.
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        // The page's NAME line and synopsis say `pe-sentinel-run`, as git's and cargo's do.
        let full = format!("{name}-{}", sub.get_name());
        page(&sub.clone().name(full.clone()), format!("{full}.1"))?;
    }
    use clap_complete::Shell;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        written.push(clap_complete::generate_to(shell, &mut cmd, &name, &comp)?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_completions_cover_every_visible_subcommand() {
        let cmd = clap::Command::new("tool")
            .about("a tool")
            .subcommand(clap::Command::new("run").about("runs").arg(clap::Arg::new("drop").long("drop")))
            .subcommand(clap::Command::new("secret").hide(true));
        let t = tempfile::tempdir().unwrap();
        let files = write_all(cmd, t.path()).unwrap();
        let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["tool.1", "tool-run.1", "tool.bash", "_tool", "tool.fish"]);
        let run = std::fs::read_to_string(t.path().join("man1/tool-run.1")).unwrap();
        assert!(run.contains(".TH TOOL-RUN") && run.contains("\\-\\-drop"), "{run}");
        let bash = std::fs::read_to_string(t.path().join("completions/tool.bash")).unwrap();
        assert!(bash.contains("--drop"), "{bash}");
    }
}
