//! The screen model: what the scanner-room display shows, as fixed-capacity lines (heapless), built
//! from the daemon's newest [`Status`] and the alert latch. Pure: no device, no clock.
//!
//! Two layouts: `Grid` (a character LCD or a Nextion panel with one text field per row: lines
//! padded to the panel width; the last cell of the top row is left to the heartbeat mark) and
//! `Fields` (the `line` protocol: one `KEY=VALUE` record per line). Text is printable ASCII only,
//! so no status text can ever form a protocol command. See docs/display.md for pictures.

use super::alert::{Alert, SeriesLabel};
use core::fmt::Write;
use heapless::{String, Vec};

/// The longest line of any layout (`SERIES=` and a 64-character label).
pub const LINE_CAPACITY: usize = 80;
/// The most lines of any layout (the `Fields` layout has 11).
pub const MAX_LINES: usize = 11;

pub type Line = String<LINE_CAPACITY>;
/// A short fault text for the screen (the log has the whole message).
pub type FaultText = String<48>;

/// Makes a fault text from any message: printable ASCII, cut to capacity.
pub fn fault_text(msg: &str) -> FaultText {
    let mut out = FaultText::new();
    for c in msg.chars() {
        if out.push(if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).is_err() {
            break;
        }
    }
    out
}

/// A short note text for the screen: why a series was skipped ("5 mm, no contrast").
pub type NoteText = String<40>;

/// What the newest series was, when it was not simply analysed (intended use, `crate::eligibility`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Not analysed, with the reasons in a few words.
    Skipped(NoteText),
    /// A patient series analysed with demo models: it never alerts.
    DemoModel,
}

/// Makes a note text: printable ASCII, cut to capacity.
pub fn note_text(msg: &str) -> NoteText {
    let mut out = NoteText::new();
    for c in msg.chars() {
        if out.push(if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).is_err() {
            break;
        }
    }
    out
}

/// The display's headline, in order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Alert,
    Fault,
    Slow,
    /// The newest series was not analysed (not what the models are meant for).
    Skipped,
    /// The newest series is a patient's, analysed with demo models: no alert can come of it.
    DemoModel,
    Analysing,
    Ready,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Alert => "ALERT",
            State::Fault => "FAULT",
            State::Slow => "SLOW",
            State::Skipped => "SKIPPED",
            State::DemoModel => "DEMO MODEL",
            State::Analysing => "ANALYSING",
            State::Ready => "READY",
        }
    }

    pub fn backlight(self) -> Backlight {
        match self {
            State::Alert => Backlight::Red,
            State::Fault | State::Slow => Backlight::Amber,
            State::Skipped | State::DemoModel | State::Analysing | State::Ready => Backlight::Green,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backlight {
    Green,
    Amber,
    Red,
}

impl Backlight {
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Backlight::Green => [0, 255, 0],
            Backlight::Amber => [255, 128, 0],
            Backlight::Red => [255, 0, 0],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backlight::Green => "GREEN",
            Backlight::Amber => "AMBER",
            Backlight::Red => "RED",
        }
    }
}

/// A character grid: the two common LCD sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Geometry {
    Cols16Rows2,
    Cols20Rows4,
}

impl Geometry {
    pub fn cols(self) -> usize {
        match self {
            Geometry::Cols16Rows2 => 16,
            Geometry::Cols20Rows4 => 20,
        }
    }

    pub fn rows(self) -> usize {
        match self {
            Geometry::Cols16Rows2 => 2,
            Geometry::Cols20Rows4 => 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Grid(Geometry),
    Fields,
}

/// What the daemon knows, the newest of it: handed to the display whole (latest wins).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// A series is open (slices arriving); false once it closed.
    pub analysing: bool,
    /// The series of the newest slice (empty before the first slice).
    pub series: SeriesLabel,
    /// The newest slice's place in its series (instance number).
    pub slice: u32,
    /// Slices analysed so far in that series (the total is not known in advance).
    pub slices: u32,
    /// The series' highest classifier P so far.
    pub max_p: f32,
    /// Detector boxes in the series so far.
    pub boxes: u32,
    /// The newest slice's latency, decode to verdict.
    pub latency_ms: u32,
    /// The latency budget, when one is set (from the budget work; `None` for now).
    pub budget_ms: Option<u32>,
    /// Over budget (from the budget work; false for now).
    pub slow: bool,
    /// A source or engine failure, until the next slice succeeds.
    pub fault: Option<FaultText>,
    /// The newest series was skipped or is a demo-model one; cleared by a slice of another series.
    pub note: Option<Note>,
}

/// The alert latch as the screen sees it.
#[derive(Debug, Clone, Copy)]
pub struct AlertView<'a> {
    pub latched: Option<&'a Alert>,
    /// Positive series waiting behind the latched one.
    pub waiting: u32,
}

/// One rendered screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Screen {
    pub state: State,
    pub light: Backlight,
    pub lines: Vec<Line, MAX_LINES>,
}

pub fn state_of(status: &Status, alert: AlertView<'_>) -> State {
    if alert.latched.is_some() {
        State::Alert
    } else if status.fault.is_some() {
        State::Fault
    } else if status.slow {
        State::Slow
    } else if matches!(status.note, Some(Note::Skipped(_))) {
        State::Skipped
    } else if matches!(status.note, Some(Note::DemoModel)) {
        State::DemoModel
    } else if status.analysing {
        State::Analysing
    } else {
        State::Ready
    }
}

/// Printable ASCII of `text`, cut or padded with spaces to exactly `width` characters.
fn fit(text: &str, width: usize) -> Line {
    let mut out = Line::new();
    for c in text.chars().take(width.min(LINE_CAPACITY)) {
        let _ = out.push(if c.is_ascii_graphic() || c == ' ' { c } else { '?' });
    }
    while out.len() < width.min(LINE_CAPACITY) {
        let _ = out.push(' ');
    }
    out
}

/// The last `width` characters of a label, with `~` marking a cut.
fn tail(label: &str, width: usize) -> Line {
    let mut out = Line::new();
    if label.len() <= width {
        let _ = out.push_str(label);
    } else if width > 0 {
        let _ = out.push('~');
        let _ = out.push_str(&label[label.len() - (width - 1)..]);
    }
    out
}

/// Formats into a line; text beyond the capacity is dropped (the grid cuts it anyway).
macro_rules! line {
    ($($t:tt)*) => {{
        let mut l = Line::new();
        let _ = write!(l, $($t)*);
        l
    }};
}

impl Screen {
    pub fn render(layout: Layout, status: &Status, alert: AlertView<'_>) -> Screen {
        let state = state_of(status, alert);
        let mut lines: Vec<Line, MAX_LINES> = Vec::new();
        let mut put = |l: Line| {
            let _ = lines.push(l);
        };
        let latency = match status.budget_ms {
            Some(b) => line!("{}ms/{}ms", status.latency_ms, b),
            None => line!("{}ms", status.latency_ms),
        };
        let has_series = !status.series.is_empty();
        match layout {
            Layout::Fields => {
                put(line!("STATE={}", state.as_str()));
                put(line!("SERIES={}", if has_series { status.series.as_str() } else { "-" }));
                put(line!("SLICE={}/{}", status.slice, status.slices));
                put(line!("PMAX={:.2}", status.max_p));
                put(line!("BOXES={}", status.boxes));
                put(line!("LATENCY_MS={}", status.latency_ms));
                match status.budget_ms {
                    Some(b) => put(line!("BUDGET_MS={b}")),
                    None => put(line!("BUDGET_MS=-")),
                }
                put(line!("ALERT={}", alert.latched.map(|a| a.series.as_str()).unwrap_or("-")));
                put(line!("QUEUED={}", alert.waiting));
                put(line!("FAULT={}", status.fault.as_deref().unwrap_or("-")));
                match &status.note {
                    Some(Note::Skipped(why)) => put(line!("NOTE=SKIPPED: {why}")),
                    Some(Note::DemoModel) => put(line!("NOTE=DEMO MODEL: no alert on patient scans")),
                    None => put(line!("NOTE=-")),
                }
            }
            Layout::Grid(g) => {
                let (cols, rows) = (g.cols(), g.rows());
                // The top row's last cell is the heartbeat mark's.
                let top = match (state, alert.waiting) {
                    (State::Alert, n) if n > 0 => line!("{:<6}+{} queued", state.as_str(), n),
                    _ if has_series && rows == 2 => line!("{:<10}{}/{}", state.as_str(), status.slice, status.slices),
                    _ => line!("{}", state.as_str()),
                };
                put(fit(&top, cols - 1));
                let series = match alert.latched {
                    Some(a) => line!("S {}", tail(&a.series, cols - 2)),
                    None if has_series => line!("S {}", tail(&status.series, cols - 2)),
                    None => line!("no series yet"),
                };
                let figures = match (alert.latched, state, &status.note) {
                    (None, State::Skipped, Some(Note::Skipped(why))) => line!("{why}"),
                    (Some(a), ..) => line!("{} sl P{:.2} B{}", a.slices, a.max_p, a.boxes),
                    (None, ..) if has_series => {
                        line!("{}/{} P{:.2} B{}", status.slice, status.slices, status.max_p, status.boxes)
                    }
                    (None, ..) => Line::new(),
                };
                let last = match (state, &status.fault) {
                    (State::Alert, _) => line!("ACK to clear"),
                    (State::Skipped, _) => line!("not analysed"),
                    (State::DemoModel, _) => line!("no alert: demo model"),
                    (State::Fault, Some(f)) => line!("{f}"),
                    (State::Slow, _) => line!("SLOW {latency}"),
                    _ if has_series => latency.clone(),
                    _ => Line::new(),
                };
                if rows == 2 {
                    let second = match (state, &status.fault) {
                        (State::Alert, _) => match alert.latched {
                            Some(a) => line!("{} ACK", tail(&a.series, cols - 4)),
                            None => line!("ACK"),
                        },
                        (State::Fault, Some(f)) => line!("{f}"),
                        (State::Skipped, _) => match &status.note {
                            Some(Note::Skipped(why)) => line!("{why}"),
                            _ => line!("not analysed"),
                        },
                        (State::DemoModel, _) => line!("no alert (demo)"),
                        _ if has_series => line!("P{:.2} B{} {}", status.max_p, status.boxes, latency),
                        _ => line!("no series yet"),
                    };
                    put(fit(&second, cols));
                } else {
                    put(fit(&series, cols));
                    put(fit(&figures, cols));
                    put(fit(&last, cols));
                }
            }
        }
        Screen { state, light: state.backlight(), lines }
    }
}

#[cfg(test)]
mod tests {
    use super::super::alert::label;
    use super::*;

    fn status() -> Status {
        Status {
            analysing: true,
            series: label("1.2.826.0.1.3680043.8.498.77"),
            slice: 12,
            slices: 12,
            max_p: 0.4321,
            boxes: 1,
            latency_ms: 840,
            ..Default::default()
        }
    }

    const NO_ALERT: AlertView<'static> = AlertView { latched: None, waiting: 0 };

    #[test]
    fn grid_lines_are_exactly_the_panel_width_and_the_heartbeat_cell_is_left_free() {
        let alert = Alert { series: label("x".repeat(70).as_str()), slices: 3, max_p: 1.0, boxes: 99_999 };
        let long = Status {
            fault: Some(fault_text(&"f".repeat(100))),
            slow: true,
            budget_ms: Some(4_000_000_000),
            latency_ms: u32::MAX,
            ..status()
        };
        for g in [Geometry::Cols16Rows2, Geometry::Cols20Rows4] {
            for (s, a) in [
                (Status::default(), NO_ALERT),
                (status(), NO_ALERT),
                (long.clone(), NO_ALERT),
                (long.clone(), AlertView { latched: Some(&alert), waiting: 123 }),
            ] {
                let sc = Screen::render(Layout::Grid(g), &s, a);
                assert_eq!(sc.lines.len(), g.rows());
                assert_eq!(sc.lines[0].len(), g.cols() - 1);
                for l in &sc.lines[1..] {
                    assert_eq!(l.len(), g.cols(), "{l:?}");
                }
            }
        }
    }

    #[test]
    fn the_state_follows_precedence_and_sets_the_backlight() {
        let alert = Alert { series: label("a"), slices: 3, max_p: 1.0, boxes: 1 };
        let latched = AlertView { latched: Some(&alert), waiting: 0 };
        let mut s = status();
        assert_eq!(state_of(&s, NO_ALERT), State::Analysing);
        s.slow = true;
        assert_eq!(state_of(&s, NO_ALERT), State::Slow);
        s.fault = Some(fault_text("engine"));
        assert_eq!(state_of(&s, NO_ALERT), State::Fault);
        assert_eq!(state_of(&s, latched), State::Alert);
        assert_eq!(State::Alert.backlight(), Backlight::Red);
        assert_eq!(State::Fault.backlight(), Backlight::Amber);
        assert_eq!(State::Slow.backlight(), Backlight::Amber);
        assert_eq!(State::Ready.backlight(), Backlight::Green);
        assert_eq!(state_of(&Status::default(), NO_ALERT), State::Ready);
    }

    #[test]
    fn a_skipped_series_and_a_demo_model_series_read_as_documented_and_never_as_alert() {
        let skipped =
            Status { analysing: false, note: Some(Note::Skipped(note_text("5 mm, no contrast"))), ..status() };
        let sc = Screen::render(Layout::Grid(Geometry::Cols20Rows4), &skipped, NO_ALERT);
        let rows: std::vec::Vec<&str> = sc.lines.iter().map(|l| l.as_str()).collect();
        assert_eq!(
            rows,
            ["SKIPPED            ", "S ~.3680043.8.498.77", "5 mm, no contrast   ", "not analysed        "]
        );
        assert_eq!(sc.light, Backlight::Green);
        let sc = Screen::render(Layout::Grid(Geometry::Cols16Rows2), &skipped, NO_ALERT);
        assert_eq!(sc.lines[1].as_str(), "5 mm, no contras");
        let fields = Screen::render(Layout::Fields, &skipped, NO_ALERT);
        assert!(fields.lines.iter().any(|l| l == "STATE=SKIPPED"));
        assert!(fields.lines.iter().any(|l| l == "NOTE=SKIPPED: 5 mm, no contrast"), "{:?}", fields.lines);
        let demo = Status { note: Some(Note::DemoModel), ..status() };
        let sc = Screen::render(Layout::Grid(Geometry::Cols20Rows4), &demo, NO_ALERT);
        let rows: std::vec::Vec<&str> = sc.lines.iter().map(|l| l.as_str()).collect();
        assert_eq!(
            rows,
            ["DEMO MODEL         ", "S ~.3680043.8.498.77", "12/12 P0.43 B1      ", "no alert: demo model"]
        );
        let plain = Screen::render(Layout::Fields, &status(), NO_ALERT);
        assert_eq!(plain.lines.last().map(|l| l.as_str()), Some("NOTE=-"));
    }

    #[test]
    fn the_20x4_screen_reads_as_documented() {
        let sc = Screen::render(Layout::Grid(Geometry::Cols20Rows4), &status(), NO_ALERT);
        let rows: std::vec::Vec<&str> = sc.lines.iter().map(|l| l.as_str()).collect();
        assert_eq!(
            rows,
            ["ANALYSING          ", "S ~.3680043.8.498.77", "12/12 P0.43 B1      ", "840ms               "]
        );
    }
}
