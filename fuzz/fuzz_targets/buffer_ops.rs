//! Buffer operation sequences against a `VecDeque<u8>` model: the bytes say which operation
//! and how big; after each one the buffer must hold exactly what the model holds.
#![no_main]

use std::collections::VecDeque;

use evloop_core::Buffer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = Buffer::new();
    let mut model: VecDeque<u8> = VecDeque::new();
    let mut other = Buffer::new();
    for op in data.chunks(3) {
        let (kind, a, b) = (op[0] % 10, *op.get(1).unwrap_or(&0) as usize, *op.get(2).unwrap_or(&0));
        let n = a * 37 + b as usize;
        match kind {
            0 => {
                let bytes = vec![b; n];
                buf.append(&bytes).unwrap();
                model.extend(&bytes);
            }
            1 => {
                let bytes = vec![b; a];
                buf.append_owned(bytes.clone()).unwrap();
                model.extend(&bytes);
            }
            2 => {
                let bytes = vec![b; a];
                buf.prepend(&bytes).unwrap();
                for &x in bytes.iter().rev() {
                    model.push_front(x);
                }
            }
            3 => {
                let got = buf.drain(n).unwrap();
                assert_eq!(got, n.min(model.len()));
                model.drain(..got);
            }
            4 => {
                let mut dst = vec![0; n];
                let got = buf.remove(&mut dst).unwrap();
                let expect: Vec<u8> = model.drain(..got).collect();
                assert_eq!(&dst[..got], &expect[..]);
            }
            5 => {
                let want = n % (model.len() + 1);
                let got = buf.pullup(want).to_vec();
                assert_eq!(got, model.iter().take(want).copied().collect::<Vec<_>>());
            }
            6 => {
                let room = buf.reserve(n).unwrap();
                let fill = n.min(room.len());
                room[..fill].fill(b);
                buf.commit(fill).unwrap();
                model.extend(std::iter::repeat(b).take(fill));
            }
            7 => {
                let moved = buf.remove_into(&mut other, n).unwrap();
                let part: Vec<u8> = model.drain(..moved).collect();
                let mut back = vec![0; moved];
                assert_eq!(other.remove(&mut back).unwrap(), moved);
                assert_eq!(back, part);
                buf.prepend(&back).unwrap();
                for &x in back.iter().rev() {
                    model.push_front(x);
                }
            }
            8 => {
                let pat = [b, a as u8];
                let m: Vec<u8> = model.iter().copied().collect();
                let from = n % (m.len() + 1);
                let expect = m.windows(2).enumerate().skip(from).find(|(_, w)| *w == pat).map(|(i, _)| i);
                assert_eq!(buf.search(&pat, from), expect);
            }
            _ => {
                let pos = n % (model.len() + 1);
                let mut dst = vec![0; a];
                let got = buf.copy_out_at(pos, &mut dst);
                let expect: Vec<u8> = model.iter().skip(pos).take(a).copied().collect();
                assert_eq!(&dst[..got], &expect[..]);
            }
        }
        assert_eq!(buf.len(), model.len());
    }
    let all: Vec<u8> = buf.chunks().flatten().copied().collect();
    assert!(all.iter().eq(model.iter()));
});
