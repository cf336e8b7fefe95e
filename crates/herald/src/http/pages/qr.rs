//! QR codes as the GIF data URIs bnotify documents (`data:image/gif;base64,…`): the module grid
//! from `qrcode`, written as a two-colour GIF with `gif` — no image-processing stack needed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use qrcode::{Color, EcLevel, QrCode};

/// Pixels per QR module.
const SCALE: usize = 6;
/// White border in modules; the QR specification asks for four.
const QUIET_ZONE: usize = 4;

/// A GIF of the QR code of `text` (error correction M).
pub fn gif(text: &str) -> Result<Vec<u8>, String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|e| format!("QR: {e}"))?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * SCALE;
    let side16 = u16::try_from(side).map_err(|_| "QR code too large".to_string())?;
    // Palette index 0 is white, 1 is black.
    let mut pixels = vec![0u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (i % modules + QUIET_ZONE, i / modules + QUIET_ZONE);
        for y in my * SCALE..(my + 1) * SCALE {
            pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(1);
        }
    }
    let mut out = Vec::with_capacity(side * side / 8);
    {
        let mut encoder = gif::Encoder::new(&mut out, side16, side16, &[0xff, 0xff, 0xff, 0, 0, 0])
            .map_err(|e| format!("GIF: {e}"))?;
        let frame = gif::Frame::from_indexed_pixels(side16, side16, pixels, None);
        encoder.write_frame(&frame).map_err(|e| format!("GIF: {e}"))?;
    }
    Ok(out)
}

/// The QR code of `text` as a `data:image/gif;base64,…` URI.
pub fn gif_data_uri(text: &str) -> Result<String, String> {
    Ok(format!("data:image/gif;base64,{}", STANDARD.encode(gif(text)?)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_a_gif_with_a_quiet_zone() {
        let gif = super::gif("https://push.example.com/qrcode/abc").unwrap();
        assert_eq!(&gif[..6], b"GIF89a");
        let mut decoder = gif::DecodeOptions::new();
        decoder.set_color_output(gif::ColorOutput::Indexed);
        let mut d = decoder.read_info(&gif[..]).unwrap();
        let frame = d.read_next_frame().unwrap().unwrap().clone();
        let w = usize::from(frame.width);
        assert_eq!(frame.width, frame.height);
        // The first rows are quiet zone (white), the finder pattern starts dark right after it.
        assert!(frame.buffer[..w * super::QUIET_ZONE * super::SCALE].iter().all(|p| *p == 0));
        let first = super::QUIET_ZONE * super::SCALE;
        assert_eq!(frame.buffer[first * w + first], 1);
        assert!(super::gif_data_uri("x").unwrap().starts_with("data:image/gif;base64,R0lGOD"));
    }
}
