//! Wire encoders for the three display kinds: each turns screen lines, the backlight colour and
//! the heartbeat into bytes appended to a buffer the caller owns. Pure; touches no device.
//!
//! - `line`: `KEY=VALUE` records ending in CR LF, one field per line, plus `LIGHT=…` and `HB`
//!   (for a microcontroller or a terminal). Input: `ACK` lines.
//! - `lcd`: the Matrix Orbital command set spoken by common USB/serial LCD backpacks (Adafruit's
//!   USB + Serial backpack among them): 0xFE-prefixed commands; text is written in place after a
//!   cursor move, so only changed rows go over the wire. See: Matrix Orbital LK204-25 manual,
//!   "Command Summary"; Adafruit "USB + Serial Backpack" command list for the RGB backlight (0xD0).
//! - `nextion`: `component.txt="…"` instructions, each ended by three 0xFF bytes. See: Nextion
//!   Instruction Set, "Assignment statements" and the `bco` attribute (RGB565 colour).

use super::screen::{Backlight, Geometry, Layout};

/// A display's command set. Text handed in is printable ASCII (the screen model guarantees it).
pub trait Protocol: Send {
    fn layout(&self) -> Layout;
    /// Puts the display into a known state before a full redraw (on start and on reconnect).
    fn reset(&self, out: &mut Vec<u8>);
    /// Rewrites row `row` with `text`.
    fn line(&self, row: usize, text: &str, out: &mut Vec<u8>);
    fn backlight(&self, light: Backlight, out: &mut Vec<u8>);
    /// One heartbeat; `tick` alternates so a ticking mark can blink.
    fn heartbeat(&self, tick: bool, out: &mut Vec<u8>);
}

/// Plain CR LF lines.
#[derive(Debug, Clone)]
pub struct PlainLines;

impl Protocol for PlainLines {
    fn layout(&self) -> Layout {
        Layout::Fields
    }

    fn reset(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"RESET\r\n");
    }

    fn line(&self, _row: usize, text: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    fn backlight(&self, light: Backlight, out: &mut Vec<u8>) {
        out.extend_from_slice(b"LIGHT=");
        out.extend_from_slice(light.as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    fn heartbeat(&self, _tick: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(b"HB\r\n");
    }
}

/// Matrix-Orbital-style character LCD.
#[derive(Debug, Clone)]
pub struct MatrixOrbital {
    pub geometry: Geometry,
}

/// Matrix Orbital command bytes (each follows 0xFE).
pub mod mo {
    pub const PREFIX: u8 = 0xFE;
    pub const CLEAR: u8 = 0x58;
    pub const CURSOR: u8 = 0x47;
    pub const AUTOSCROLL_OFF: u8 = 0x52;
    pub const UNDERLINE_CURSOR_OFF: u8 = 0x4B;
    pub const BLOCK_CURSOR_OFF: u8 = 0x54;
    pub const BACKLIGHT_ON: u8 = 0x42;
    pub const RGB: u8 = 0xD0;
}

impl Protocol for MatrixOrbital {
    fn layout(&self) -> Layout {
        Layout::Grid(self.geometry)
    }

    fn reset(&self, out: &mut Vec<u8>) {
        use mo::*;
        for cmd in [AUTOSCROLL_OFF, UNDERLINE_CURSOR_OFF, BLOCK_CURSOR_OFF] {
            out.extend_from_slice(&[PREFIX, cmd]);
        }
        // Backlight on with no auto-off (0 minutes), then a blank screen.
        out.extend_from_slice(&[PREFIX, BACKLIGHT_ON, 0, PREFIX, CLEAR]);
    }

    fn line(&self, row: usize, text: &str, out: &mut Vec<u8>) {
        // Columns and rows count from 1.
        out.extend_from_slice(&[mo::PREFIX, mo::CURSOR, 1, row as u8 + 1]);
        out.extend_from_slice(text.as_bytes());
    }

    fn backlight(&self, light: Backlight, out: &mut Vec<u8>) {
        let [r, g, b] = light.rgb();
        out.extend_from_slice(&[mo::PREFIX, mo::RGB, r, g, b]);
    }

    fn heartbeat(&self, tick: bool, out: &mut Vec<u8>) {
        let col = self.geometry.cols() as u8;
        out.extend_from_slice(&[mo::PREFIX, mo::CURSOR, col, 1, if tick { b'*' } else { b' ' }]);
    }
}

/// Nextion HMI panel: one text component per row, one for the heartbeat.
#[derive(Debug, Clone)]
pub struct Nextion {
    pub geometry: Geometry,
    /// Component names, one per row (the first also takes the backlight colour as background).
    pub fields: Vec<String>,
    pub heartbeat_field: String,
}

const NEXTION_END: [u8; 3] = [0xFF, 0xFF, 0xFF];

impl Nextion {
    fn cmd(out: &mut Vec<u8>, parts: &[&[u8]]) {
        for p in parts {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(&NEXTION_END);
    }

    /// RGB565, as Nextion colours are given.
    fn rgb565([r, g, b]: [u8; 3]) -> u16 {
        (u16::from(r) >> 3) << 11 | (u16::from(g) >> 2) << 5 | u16::from(b) >> 3
    }
}

impl Protocol for Nextion {
    fn layout(&self) -> Layout {
        Layout::Grid(self.geometry)
    }

    fn reset(&self, out: &mut Vec<u8>) {
        // An empty instruction flushes whatever half command a reconnect interrupted; then full
        // brightness.
        out.extend_from_slice(&NEXTION_END);
        Self::cmd(out, &[b"dim=100"]);
    }

    fn line(&self, row: usize, text: &str, out: &mut Vec<u8>) {
        let Some(name) = self.fields.get(row) else { return };
        // The text has no `"` or `\` to escape: the screen model keeps printable ASCII, and these
        // two are replaced here so a label cannot end the string early.
        let text: Vec<u8> = text.bytes().map(|b| if b == b'"' || b == b'\\' { b'\'' } else { b }).collect();
        Self::cmd(out, &[name.as_bytes(), b".txt=\"", &text, b"\""]);
    }

    fn backlight(&self, light: Backlight, out: &mut Vec<u8>) {
        let Some(name) = self.fields.first() else { return };
        let c = Self::rgb565(light.rgb()).to_string();
        Self::cmd(out, &[name.as_bytes(), b".bco=", c.as_bytes()]);
    }

    fn heartbeat(&self, tick: bool, out: &mut Vec<u8>) {
        Self::cmd(out, &[self.heartbeat_field.as_bytes(), if tick { b".txt=\"*\"" } else { b".txt=\" \"" }]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoders_produce_the_documented_bytes() {
        let mut out = Vec::new();
        PlainLines.line(0, "STATE=ALERT", &mut out);
        PlainLines.backlight(Backlight::Red, &mut out);
        PlainLines.heartbeat(true, &mut out);
        assert_eq!(out, b"STATE=ALERT\r\nLIGHT=RED\r\nHB\r\n");

        let lcd = MatrixOrbital { geometry: Geometry::Cols20Rows4 };
        let mut out = Vec::new();
        lcd.line(2, "ab", &mut out);
        lcd.backlight(Backlight::Amber, &mut out);
        lcd.heartbeat(true, &mut out);
        lcd.heartbeat(false, &mut out);
        assert_eq!(
            out,
            [
                &[0xFE, 0x47, 1, 3, b'a', b'b'][..],
                &[0xFE, 0xD0, 255, 128, 0],
                &[0xFE, 0x47, 20, 1, b'*'],
                &[0xFE, 0x47, 20, 1, b' ']
            ]
            .concat()
        );

        let nx = Nextion {
            geometry: Geometry::Cols16Rows2,
            fields: vec!["t0".into(), "t1".into()],
            heartbeat_field: "hb".into(),
        };
        let mut out = Vec::new();
        nx.line(1, "say \"hi\"", &mut out);
        nx.line(5, "no such field", &mut out);
        nx.backlight(Backlight::Red, &mut out);
        nx.backlight(Backlight::Green, &mut out);
        assert_eq!(out, b"t1.txt=\"say 'hi'\"\xff\xff\xfft0.bco=63488\xff\xff\xfft0.bco=2016\xff\xff\xff");
    }
}
