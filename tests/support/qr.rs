//! Reads QR codes back, as a phone camera would: from the gateway's SVG (its rectangles painted
//! onto a grid) or from a screenshot (PNG), decoded by `rqrr`.

/// The text of the one QR code in an SVG made of `M x y h w v h H x V y` rectangles (the
/// `qrcode` crate's SVG shape).
pub fn decode_svg(svg: &str) -> String {
    let number = |name: &str| -> usize {
        let start = svg.find(&format!(" {name}=\"")).expect(name) + name.len() + 3;
        let end = start + svg[start..].find('"').expect("quote");
        svg[start..end].parse().expect("number")
    };
    let (width, height) = (number("width"), number("height"));
    let d_start = svg.find(" d=\"").expect("path") + 4;
    let d = &svg[d_start..d_start + svg[d_start..].find('"').expect("end of path")];
    let mut dark = vec![false; width * height];
    for rect in d.split('M').filter(|r| !r.is_empty()) {
        let parts: Vec<usize> = rect
            .split(|c: char| c.is_ascii_alphabetic() || c == ' ')
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().expect("coordinate"))
            .collect();
        let (left, top, w, h) = (parts[0], parts[1], parts[2], parts[3]);
        for y in top..top + h {
            for x in left..left + w {
                dark[y * width + x] = true;
            }
        }
    }
    decode(width, height, |x, y| dark[y * width + x])
}

/// The text of the one QR code in a PNG screenshot.
pub fn decode_png(bytes: &[u8]) -> String {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let channels = info.color_type.samples();
    let (width, height) = (info.width as usize, info.height as usize);
    let luma = |x: usize, y: usize| -> u32 {
        let at = (y * width + x) * channels;
        buf[at..at + channels.min(3)]
            .iter()
            .map(|v| *v as u32)
            .sum::<u32>()
            / channels.min(3) as u32
    };
    decode(width, height, |x, y| luma(x, y) < 128)
}

fn decode(width: usize, height: usize, dark: impl Fn(usize, usize) -> bool) -> String {
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        if dark(x, y) {
            0
        } else {
            255
        }
    });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    let (_, text) = grids[0].decode().expect("the QR code decodes");
    text
}
