//! Line reads and searches over arbitrary chunkings: the first byte picks the chunk size,
//! the rest is the data; every end-of-line style must split it as a plain slice would.
#![no_main]

use evloop_core::{Buffer, Eol};
use libfuzzer_sys::fuzz_target;

fn reference(m: &[u8], style: Eol) -> Option<(usize, usize)> {
    match style {
        Eol::Lf => m.iter().position(|&b| b == b'\n').map(|p| (p, 1)),
        Eol::Nul => m.iter().position(|&b| b == 0).map(|p| (p, 1)),
        Eol::CrlfStrict => m.windows(2).position(|w| w == b"\r\n").map(|p| (p, 2)),
        Eol::Crlf => {
            let p = m.iter().position(|&b| b == b'\n')?;
            Some(if p > 0 && m[p - 1] == b'\r' { (p - 1, 2) } else { (p, 1) })
        }
        Eol::Any => {
            let s = m.iter().position(|&b| b == b'\r' || b == b'\n')?;
            let e = m[s..].iter().position(|&b| b != b'\r' && b != b'\n').map_or(m.len(), |i| s + i);
            Some((s, e - s))
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let chunk = (first as usize % 7) + 1;
    for style in [Eol::Any, Eol::Crlf, Eol::CrlfStrict, Eol::Lf, Eol::Nul] {
        let mut buf = Buffer::new();
        for c in rest.chunks(chunk) {
            buf.append_owned(c.to_vec()).unwrap();
        }
        let mut model = rest.to_vec();
        loop {
            let expect = reference(&model, style);
            let got = buf.read_line(style);
            match expect {
                Some((p, l)) => {
                    assert_eq!(got.as_deref(), Some(&model[..p]), "{style:?}");
                    model.drain(..p + l);
                }
                None => {
                    assert_eq!(got, None, "{style:?}");
                    break;
                }
            }
        }
        assert_eq!(buf.len(), model.len());
    }
});
