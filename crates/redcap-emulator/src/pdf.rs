//! A text-only PDF writer for Export PDF: sections of styled lines, wrapped and paginated on
//! US Letter pages, in Helvetica (one of PDF's 14 standard fonts, so nothing is embedded).
//!
//! Text is written in WinAnsiEncoding: characters outside it (Cyrillic, CJK …) print as `?`.
//! Knowing only the fonts' average width, lines are wrapped by character count.

use pdf_writer::{Chunk, Content, Finish, Name, Rect, Ref, Str, TextStr};

/// How a line is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// An instrument's name, at the top of its page.
    Title,
    /// A section header, or the record/event line under the title.
    Heading,
    /// A field label.
    Label,
    /// A value or choice under its label (indented).
    Value,
}

impl Style {
    fn size(self) -> f32 {
        match self {
            Style::Title => 15.0,
            Style::Heading => 11.5,
            Style::Label | Style::Value => 10.0,
        }
    }

    fn bold(self) -> bool {
        matches!(self, Style::Title | Style::Heading)
    }

    fn indent(self) -> f32 {
        if self == Style::Value { 18.0 } else { 0.0 }
    }

    /// Space before the line.
    fn gap(self) -> f32 {
        match self {
            Style::Title => 0.0,
            Style::Heading => 8.0,
            Style::Label => 5.0,
            Style::Value => 0.0,
        }
    }
}

/// One line of a section (wrapped when too long).
#[derive(Clone, Debug)]
pub struct Line {
    pub style: Style,
    pub text: String,
}

impl Line {
    /// A line of `text` in `style`.
    pub fn new(style: Style, text: impl Into<String>) -> Self {
        Line { style, text: text.into() }
    }
}

/// Lines that start on a new page.
pub type Section = Vec<Line>;

const PAGE_W: f32 = 612.0;
const PAGE_H: f32 = 792.0;
const MARGIN: f32 = 54.0;
/// Helvetica's average character width, in em (for wrapping by count).
const AVG_EM: f32 = 0.52;

/// One placed line: style, baseline y and encoded text.
struct Placed {
    style: Style,
    y: f32,
    bytes: Vec<u8>,
}

/// Writes `sections` as a PDF titled `title` (document info), `footer` at the foot of every page.
pub fn document(title: &str, footer: &str, sections: &[Section]) -> Vec<u8> {
    let mut pages: Vec<Vec<Placed>> = Vec::new();
    for section in sections {
        let mut page: Vec<Placed> = Vec::new();
        let mut y = PAGE_H - MARGIN;
        for line in section {
            let size = line.style.size();
            let lead = size * 1.3;
            let width_chars = ((PAGE_W - 2.0 * MARGIN - line.style.indent()) / (size * AVG_EM)) as usize;
            y -= line.style.gap();
            for piece in wrap(&line.text, width_chars.max(10)) {
                if y - lead < MARGIN + 20.0 {
                    pages.push(std::mem::take(&mut page));
                    y = PAGE_H - MARGIN;
                }
                y -= lead;
                page.push(Placed { style: line.style, y, bytes: win_ansi(&piece) });
            }
        }
        pages.push(page);
    }
    if pages.is_empty() {
        pages.push(Vec::new());
    }

    // Object 1 is the page tree, 2 the catalog, then each page and its content from 3 on, then
    // the fonts and the document info. The file starts `%PDF-1.3\n3 0 obj\n` as REDCap's do
    // (PyCap 2.7.0 doctest redcap.methods.instruments.Instruments.export_pdf:
    // `(b'%PDF-1.3\\n3 0 obj\\n..., {...})`), hence objects written one chunk at a time and the
    // cross-reference table written here (pdf-writer's own header adds a binary-marker line).
    let n = pages.len() as i32;
    let tree = Ref::new(1);
    let catalog = Ref::new(2);
    let page_id = |i: usize| Ref::new(3 + 2 * i as i32);
    let regular = Ref::new(3 + 2 * n);
    let bold = Ref::new(4 + 2 * n);
    let info = Ref::new(5 + 2 * n);
    let mut file = Writer { bytes: b"%PDF-1.3\n".to_vec(), offsets: Vec::new() };
    for (i, placed) in pages.iter().enumerate() {
        let id = page_id(i);
        let content_id = Ref::new(id.get() + 1);
        let mut chunk = Chunk::new();
        let mut page = chunk.page(id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
        page.parent(tree);
        page.contents(content_id);
        page.resources().fonts().pair(Name(b"F1"), regular).pair(Name(b"F2"), bold);
        page.finish();
        file.put(id, &chunk);
        let mut c = Content::new();
        for line in placed {
            let font = if line.style.bold() { Name(b"F2") } else { Name(b"F1") };
            c.begin_text();
            c.set_font(font, line.style.size());
            c.next_line(MARGIN + line.style.indent(), line.y);
            c.show(Str(&line.bytes));
            c.end_text();
        }
        c.begin_text();
        c.set_font(Name(b"F1"), 8.0);
        c.next_line(MARGIN, MARGIN - 18.0);
        c.show(Str(&win_ansi(&format!("{footer}    Page {} of {n}", i + 1))));
        c.end_text();
        let mut chunk = Chunk::new();
        chunk.stream(content_id, &c.finish());
        file.put(content_id, &chunk);
    }
    let mut chunk = Chunk::new();
    chunk.type1_font(regular).base_font(Name(b"Helvetica")).encoding_predefined(Name(b"WinAnsiEncoding"));
    file.put(regular, &chunk);
    let mut chunk = Chunk::new();
    chunk.type1_font(bold).base_font(Name(b"Helvetica-Bold")).encoding_predefined(Name(b"WinAnsiEncoding"));
    file.put(bold, &chunk);
    let mut chunk = Chunk::new();
    chunk
        .indirect(info)
        .start::<pdf_writer::writers::DocumentInfo>()
        .title(TextStr(title))
        .producer(TextStr("REDCap emulator"));
    file.put(info, &chunk);
    let mut chunk = Chunk::new();
    chunk.pages(tree).kids((0..pages.len()).map(page_id)).count(n);
    file.put(tree, &chunk);
    let mut chunk = Chunk::new();
    chunk.indirect(catalog).start::<pdf_writer::writers::Catalog>().pages(tree);
    file.put(catalog, &chunk);
    file.finish(catalog, info)
}

/// A PDF file being written: the bytes so far and where each object starts.
struct Writer {
    bytes: Vec<u8>,
    offsets: Vec<(i32, usize)>,
}

impl Writer {
    /// Appends `chunk`, which holds the one object `id`.
    fn put(&mut self, id: Ref, chunk: &Chunk) {
        self.offsets.push((id.get(), self.bytes.len()));
        self.bytes.extend_from_slice(chunk.as_bytes());
    }

    /// The cross-reference table (objects 1 to N, as written) and the trailer.
    fn finish(mut self, root: Ref, info: Ref) -> Vec<u8> {
        self.offsets.sort_unstable();
        let size = self.offsets.len() + 1;
        let xref = self.bytes.len();
        let mut tail = format!("xref\n0 {size}\n0000000000 65535 f \n");
        for (_, offset) in &self.offsets {
            tail.push_str(&format!("{offset:010} 00000 n \n"));
        }
        tail.push_str(&format!(
            "trailer\n<< /Size {size} /Root {} 0 R /Info {} 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            root.get(),
            info.get()
        ));
        self.bytes.extend_from_slice(tail.as_bytes());
        self.bytes
    }
}

/// Splits `text` into lines of at most `width` characters, at spaces where possible; explicit
/// line breaks are kept. An empty text is one empty line.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut len = 0;
        for word in para.split(' ') {
            let mut word: Vec<char> = word.chars().collect();
            // Words longer than a line are cut.
            while word.len() > width {
                if len > 0 {
                    out.push(std::mem::take(&mut line));
                    len = 0;
                }
                out.push(word.drain(..width).collect());
            }
            let wlen = word.len();
            if len > 0 && len + 1 + wlen > width {
                out.push(std::mem::take(&mut line));
                len = 0;
            }
            if len > 0 {
                line.push(' ');
                len += 1;
            }
            line.extend(word);
            len += wlen;
        }
        out.push(line);
    }
    out
}

/// `s` in WinAnsiEncoding (Latin-1 plus the Windows-1252 punctuation); other characters as `?`,
/// control characters as spaces.
fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match c {
            '\t' | '\r' => b' ',
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '€' => 0x80,
            '‚' => 0x82,
            '„' => 0x84,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '™' => 0x99,
            c if c.is_control() => b' ',
            _ => b'?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping() {
        assert_eq!(wrap("", 10), [""]);
        assert_eq!(wrap("aaa bbb ccc", 7), ["aaa bbb", "ccc"]);
        assert_eq!(wrap("abcdefghijkl", 5), ["abcde", "fghij", "kl"]);
        assert_eq!(wrap("a\nb", 5), ["a", "b"]);
    }

    #[test]
    fn encoding() {
        assert_eq!(win_ansi("é€Я\u{1}"), [0xe9, 0x80, b'?', b' ']);
    }

    #[test]
    fn a_long_section_takes_several_pages() {
        let lines: Section = (0..200).map(|i| Line::new(Style::Label, format!("line {i}"))).collect();
        let pdf = document("t", "f", &[lines, vec![Line::new(Style::Title, "next")]]);
        assert!(pdf.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&pdf);
        let count: usize =
            text.split("/Count ").nth(1).unwrap().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap();
        // A label takes 18 points (5 gap, 13 leading) of the 664 between the margins: 37 a page,
        // so 200 take 6 pages; the next section starts a 7th.
        assert_eq!(count, 7);
    }

    /// Every cross-reference entry points at its object, and the file starts as REDCap's do.
    #[test]
    fn cross_references_point_at_their_objects() {
        let pdf = document("t", "f", &[vec![Line::new(Style::Title, "a")], vec![Line::new(Style::Label, "b")]]);
        assert!(pdf.starts_with(b"%PDF-1.3\n3 0 obj\n"));
        let text = String::from_utf8_lossy(&pdf).into_owned();
        let start: usize = text.rsplit("startxref\n").next().unwrap().lines().next().unwrap().parse().unwrap();
        assert!(text[start..].starts_with("xref\n0 10\n"), "2 pages: 1 tree, 1 catalog, 4, 2 fonts, 1 info");
        for (id, line) in text[start..].lines().skip(3).take(9).enumerate() {
            let offset: usize = line[..10].parse().unwrap();
            assert!(text[offset..].starts_with(&format!("{} 0 obj", id + 1)), "object {}", id + 1);
        }
    }
}
