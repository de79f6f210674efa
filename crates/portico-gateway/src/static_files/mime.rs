//! Media types of files, from their extension. A short table of what websites and APIs serve;
//! anything else is `application/octet-stream`, which a browser downloads rather than runs.

use std::sync::OnceLock;

use portico_http::negotiate::MediaType;

/// Extension (lower case) → media type. Text types say their charset: Portico serves files
/// as they are, and UTF-8 is what text on the web is.
const TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("jsonld", "application/ld+json"),
    ("geojson", "application/geo+json"),
    ("webmanifest", "application/manifest+json"),
    ("xml", "application/xml"),
    ("txt", "text/plain; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("yaml", "application/yaml"),
    ("yml", "application/yaml"),
    ("ics", "text/calendar; charset=utf-8"),
    ("vtt", "text/vtt; charset=utf-8"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/vnd.microsoft.icon"),
    ("bmp", "image/bmp"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("epub", "application/epub+zip"),
    ("mp3", "audio/mpeg"),
    ("m4a", "audio/mp4"),
    ("ogg", "audio/ogg"),
    ("oga", "audio/ogg"),
    ("wav", "audio/wav"),
    ("flac", "audio/flac"),
    ("mp4", "video/mp4"),
    ("m4v", "video/mp4"),
    ("webm", "video/webm"),
    ("ogv", "video/ogg"),
    ("mov", "video/quicktime"),
];

/// `application/octet-stream`
pub(crate) const DEFAULT: &str = "application/octet-stream";

/// The table, parsed once, for negotiation; the default type last.
fn parsed() -> &'static [MediaType] {
    static PARSED: OnceLock<Vec<MediaType>> = OnceLock::new();
    PARSED.get_or_init(|| {
        TYPES
            .iter()
            .map(|(_, t)| *t)
            .chain([DEFAULT])
            .map(|t| MediaType::parse(t).unwrap_or_else(|_| MediaType::octet_stream()))
            .collect()
    })
}

/// The media type of a file named `name`, as text and parsed.
pub(crate) fn for_file(name: &str) -> (&'static str, &'static MediaType) {
    let index = name
        .rsplit_once('.')
        .and_then(|(_, ext)| TYPES.iter().position(|(e, _)| e.eq_ignore_ascii_case(ext)))
        .unwrap_or(TYPES.len());
    let text = TYPES.get(index).map_or(DEFAULT, |(_, t)| t);
    (text, &parsed()[index])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_extension_case_insensitively() {
        assert_eq!(for_file("index.html").0, "text/html; charset=utf-8");
        assert_eq!(for_file("LOGO.PNG").0, "image/png");
        assert_eq!(for_file("archive.tar.gz").0, "application/gzip");
        assert_eq!(for_file("Makefile").0, DEFAULT);
        assert_eq!(for_file("x.unknown").0, DEFAULT);
        assert_eq!(for_file(".hidden").0, DEFAULT);
    }

    #[test]
    fn every_type_parses_and_the_parsed_form_matches_the_text() {
        for (_, t) in TYPES {
            assert_eq!(&MediaType::parse(t).unwrap().to_string(), t);
        }
        for name in ["a.html", "b.PNG", "c", "d.zzz", "e.svg"] {
            let (text, parsed) = for_file(name);
            assert_eq!(parsed.to_string(), text);
        }
    }
}
