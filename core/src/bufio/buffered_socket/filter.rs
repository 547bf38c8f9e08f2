//! Filtered sockets (libevent's `bufferevent_filter_new`): a [`BufferedSocket`] stacked on
//! another one, whose bytes pass through a user's [`Filter`] on the way in and on the way out.
//!
//! The filtered socket has no fd of its own. The socket under it (plain, TLS, or one end of a
//! pair) does the I/O; the filtered socket takes over that socket's callbacks: what it reads
//! goes through [`Filter::input`] into the filtered socket's input, and what the user writes
//! goes through [`Filter::output`] into its output. Backpressure runs through the same
//! watermarks: the socket under stops reading while the filtered input holds its high
//! watermark, and the output filter runs only while the socket under holds less than its
//! write high watermark (64 KiB when it has none), so a slow peer slows the writer instead of
//! growing a buffer. Callbacks of a filtered socket are always deferred to the loop, as a
//! pair's are, so none of them runs inside another socket's.

use std::io;
use std::rc::Rc;

use super::{BevCallback, BevEvent, Buffer, EventFlags, Registry, Shared, State, WeakShared};
use super::{Which, INTERNAL_REFS};

/// How far a filter should push bytes through (libevent's `bufferevent_flush_mode`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FlushMode {
    /// Transform what is there; a filter may hold back a unit it has only part of (a line,
    /// a compression block).
    Normal,
    /// Push out everything held back that can be pushed now (zlib's sync flush).
    Flush,
    /// Nothing more comes this way: push out everything and end the stream (a trailer).
    /// The input side runs in this mode once the socket under reports end of file.
    Finished,
}

/// What a filter call achieved (libevent's `BEV_OK` and `BEV_NEED_MORE`; its `BEV_ERROR` is
/// an `Err`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FilterResult {
    /// It did what it could; call again when there is more to do.
    Ok,
    /// It cannot produce more until more input arrives (a partial line): the filter is not
    /// called again in this pass.
    NeedMore,
}

/// A transform between a socket and its user's buffers (libevent's
/// `bufferevent_filter_cb`). Each method moves bytes from `src` to `dst`, adding about `limit`
/// bytes at most (`usize::MAX`: no limit; a little over is fine, as a filter may need to
/// finish a unit), and may leave in `src` what it cannot transform yet. It is called again
/// while it makes progress, `src` is not empty and `dst` has room.
///
/// Both methods default to passing bytes through unchanged, so a filter that transforms
/// only one direction implements only that one.
///
/// # Errors
///
/// An `Err` stops the socket: both directions are disabled and the event callback hears
/// one ERROR, with READING or WRITING, carrying the error.
///
/// # Examples
///
/// A filter that upper-cases what is written, whole lines at a time:
///
/// ```
/// use std::io;
/// use evloop::{Buffer, Eol, Filter, FilterResult, FlushMode};
///
/// struct Shout;
///
/// impl Filter for Shout {
///     fn output(&mut self, src: &mut Buffer, dst: &mut Buffer, _limit: usize, mode: FlushMode)
///         -> io::Result<FilterResult>
///     {
///         while let Some(mut line) = src.read_line(Eol::Lf) {
///             line.make_ascii_uppercase();
///             line.push(b'\n');
///             dst.append(&line)?;
///         }
///         if mode == FlushMode::Finished {
///             // The end: a last line without its newline goes too.
///             src.remove_into(dst, usize::MAX)?;
///         }
///         Ok(if src.is_empty() { FilterResult::Ok } else { FilterResult::NeedMore })
///     }
/// }
///
/// let (mut src, mut dst) = (Buffer::new(), Buffer::new());
/// src.append(b"hello\nwor")?;
/// Shout.output(&mut src, &mut dst, usize::MAX, FlushMode::Normal)?;
/// assert_eq!(dst.pullup(dst.len()), b"HELLO\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Filter {
    /// Transform bytes read from the socket under (`src`) into the user's input (`dst`).
    ///
    /// # Errors
    ///
    /// The stream cannot be decoded; see [`Filter`].
    fn input(
        &mut self,
        src: &mut Buffer,
        dst: &mut Buffer,
        limit: usize,
        mode: FlushMode,
    ) -> io::Result<FilterResult> {
        pass_through(src, dst, limit, mode)
    }

    /// Transform bytes the user wrote (`src`) into the output of the socket under (`dst`).
    ///
    /// # Errors
    ///
    /// The bytes cannot be encoded; see [`Filter`].
    fn output(
        &mut self,
        src: &mut Buffer,
        dst: &mut Buffer,
        limit: usize,
        mode: FlushMode,
    ) -> io::Result<FilterResult> {
        pass_through(src, dst, limit, mode)
    }
}

/// What both directions of a [`Filter`] do by default: move up to `limit` bytes unchanged.
fn pass_through(
    src: &mut Buffer,
    dst: &mut Buffer,
    limit: usize,
    _mode: FlushMode,
) -> io::Result<FilterResult> {
    src.remove_into(dst, limit)?;
    Ok(FilterResult::Ok)
}

/// How much transformed output may wait in a socket under without a write high watermark:
/// enough to fill a socket's send buffer in one write, little enough that a slow peer makes
/// the user's own output (and its watermark) fill instead.
const OUTPUT_AHEAD: usize = 64 * 1024;

/// A filtered socket's link to the socket under it.
pub(in crate::bufio) struct FilterLayer<D> {
    filter: Box<dyn Filter>,
    pub(super) under: Shared<D>,
    /// The mode the output side runs in until it has pushed everything (`flush_with`).
    out_mode: FlushMode,
    /// The socket under reported end of file; its input is run through the filter as
    /// `Finished`, and EOF is reported once that is done.
    eof_seen: bool,
    /// The socket under stopped reading for good (end of file, an error).
    read_over: bool,
    /// Output went through since the write callback was last due.
    wrote: bool,
}

#[derive(Copy, Clone)]
enum Side {
    In,
    Out,
}

/// Run `filter` from `src` into `dst` while it makes progress, `src` is not empty and `dst`
/// has room (`limit` more bytes); in `Normal` mode not at all without input or room. Returns
/// how many bytes it added to `dst`.
fn run(
    filter: &mut dyn Filter,
    side: Side,
    src: &mut Buffer,
    dst: &mut Buffer,
    limit: usize,
    mode: FlushMode,
) -> io::Result<usize> {
    if mode == FlushMode::Normal && (src.is_empty() || limit == 0) {
        return Ok(0);
    }
    let start = dst.len();
    loop {
        let before = (src.len(), dst.len());
        let room = limit.saturating_sub(dst.len().saturating_sub(start));
        let result = match side {
            Side::In => filter.input(src, dst, room, mode)?,
            Side::Out => filter.output(src, dst, room, mode)?,
        };
        let added = dst.len().saturating_sub(start);
        // A filter that moved nothing would be called forever: stop, as on NeedMore.
        if result == FilterResult::NeedMore
            || (src.len(), dst.len()) == before
            || src.is_empty()
            || added >= limit
        {
            return Ok(added);
        }
    }
}

impl<D> FilterLayer<D> {
    pub(super) fn new(filter: Box<dyn Filter>, under: Shared<D>) -> Self {
        FilterLayer {
            filter,
            under,
            out_mode: FlushMode::Normal,
            eof_seen: false,
            read_over: false,
            wrote: false,
        }
    }
}

impl<D: 'static> State<D> {
    fn layer(&mut self) -> &mut FilterLayer<D> {
        self.filter.as_mut().expect("on the filter path")
    }

    /// Bytes not yet handed to the kernel: the output, and on TLS one more while records
    /// wait (rustls does not say how many).
    pub(super) fn unsent(&self) -> usize {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return self.output.len() + usize::from(tls.wants_write());
        }
        if let Some(layer) = &self.filter {
            if let Ok(under) = layer.under.try_borrow() {
                return self.output.len() + under.unsent();
            }
        }
        self.output.len()
    }

    /// Whether a callback is due (read, write or an event).
    fn anything_due(&self) -> bool {
        self.pending.read || self.pending.write || !self.pending.events.is_empty()
    }

    /// Move what the socket under read through the input filter into our input, as far as
    /// our high watermark allows; report EOF once the filter has had the last of it.
    fn filter_input(&mut self, under: &mut State<D>, mode: FlushMode) {
        if !self.enabled.contains(EventFlags::READ) {
            return;
        }
        let room = self.input_room();
        let layer = self.filter.as_mut().expect("on the filter path");
        let mode = if layer.eof_seen {
            FlushMode::Finished
        } else {
            mode
        };
        match run(
            &mut *layer.filter,
            Side::In,
            &mut under.input,
            &mut self.input,
            room,
            mode,
        ) {
            Ok(n) => {
                if n > 0 && self.input.len() >= self.marks.read_low.max(1) {
                    self.pending.read = true;
                }
                // The end is reported after the filter had the last bytes: all of them, or
                // all it would take with room to spare.
                if layer.eof_seen && (under.input.is_empty() || n < room) {
                    layer.eof_seen = false;
                    self.enabled = self.enabled.without(EventFlags::READ);
                    self.pending.events |= BevEvent::EOF | BevEvent::READING;
                }
            }
            Err(e) => self.filter_fail(e, BevEvent::READING),
        }
    }

    /// Move what the user wrote through the output filter into the socket under, as far as
    /// it has room; the write callback is due once both outputs are drained (to the low
    /// watermark).
    fn filter_output(&mut self, under: &mut State<D>) {
        if self.enabled.contains(EventFlags::WRITE) {
            let room = if under.marks.write_high > 0 {
                under.marks.write_high
            } else {
                OUTPUT_AHEAD
            }
            .saturating_sub(under.output.len());
            let layer = self.filter.as_mut().expect("on the filter path");
            let mode = layer.out_mode;
            match run(
                &mut *layer.filter,
                Side::Out,
                &mut self.output,
                &mut under.output,
                room,
                mode,
            ) {
                Ok(n) => {
                    layer.wrote |= n > 0 || !self.output.is_empty();
                    // A flush is done once the filter stopped short of the room it had.
                    if n < room {
                        layer.out_mode = FlushMode::Normal;
                    }
                }
                Err(e) => return self.filter_fail(e, BevEvent::WRITING),
            }
        }
        let unsent = self.output.len() + under.unsent();
        let layer = self.layer();
        if layer.wrote && unsent <= self.marks.write_low && self.wants_drained() {
            self.layer().wrote = false;
            self.pending.write = true;
        }
    }

    /// What the socket under told its event callback, told ours.
    fn filter_event(&mut self, what: BevEvent, error: Option<io::Error>) {
        if what.contains(BevEvent::EOF) {
            let layer = self.layer();
            layer.eof_seen = true;
            layer.read_over = true;
            // Reported by `filter_input` once the filter had the rest.
            return;
        }
        if what.contains(BevEvent::ERROR) {
            self.layer().read_over = true;
            self.enabled = EventFlags::empty();
        }
        if what.contains(BevEvent::TIMEOUT) {
            // The socket under disabled that direction; ours says so too.
            if what.contains(BevEvent::READING) {
                self.enabled = self.enabled.without(EventFlags::READ);
            }
            if what.contains(BevEvent::WRITING) {
                self.enabled = self.enabled.without(EventFlags::WRITE);
            }
        }
        self.pending.events |= what;
        if self.pending.error.is_none() {
            self.pending.error = error;
        }
    }

    /// A filter error: both directions stop, one ERROR event carries it.
    fn filter_fail(&mut self, e: io::Error, dir: BevEvent) {
        self.enabled = EventFlags::empty();
        self.pending.events |= BevEvent::ERROR | dir;
        if self.pending.error.is_none() {
            self.pending.error = Some(e);
        }
    }

    /// The socket under reads and writes while we do: reading while our input has room (and
    /// always during its TLS handshake, which needs it), never again after its end.
    fn steer_under(&self, under: &mut State<D>) {
        let layer = self.filter.as_ref().expect("on the filter path");
        let read = !layer.read_over
            && ((self.enabled.contains(EventFlags::READ)
                && (self.marks.read_high == 0 || self.input.len() < self.marks.read_high))
                || under.handshaking());
        for (flag, on) in [
            (EventFlags::READ, read),
            (EventFlags::WRITE, self.enabled.contains(EventFlags::WRITE)),
        ] {
            if on {
                under.enabled |= flag;
            } else {
                under.enabled = under.enabled.without(flag);
            }
        }
    }

    /// `sync` of a filtered socket: run both filters, steer the socket under and sync it.
    pub(super) fn filter_sync(&mut self, ops: &mut Registry<D>) -> io::Result<()> {
        let under_rc = self.layer().under.clone();
        // Busy only while the socket under runs a callback of ours, which syncs it after.
        let Ok(mut under) = under_rc.try_borrow_mut() else {
            return Ok(());
        };
        if under.freed {
            return Ok(());
        }
        self.filter_input(&mut under, FlushMode::Normal);
        self.filter_output(&mut under);
        self.steer_under(&mut under);
        let synced = under.sync(ops);
        // What the socket under wrote at once may have drained both outputs.
        self.filter_output(&mut under);
        if self.anything_due() {
            self.schedule(ops);
        }
        synced
    }

    /// `flush_with` on a filtered socket: run the chosen sides in `mode` now.
    pub(super) fn filter_flush(
        &mut self,
        ops: &mut Registry<D>,
        dirs: EventFlags,
        mode: FlushMode,
    ) -> io::Result<()> {
        let under_rc = self.layer().under.clone();
        let Ok(mut under) = under_rc.try_borrow_mut() else {
            return Ok(());
        };
        if dirs.contains(EventFlags::READ) {
            self.filter_input(&mut under, mode);
        }
        if dirs.contains(EventFlags::WRITE) && mode != FlushMode::Normal {
            self.layer().out_mode = mode;
        }
        drop(under);
        self.filter_sync(ops)
    }

    /// Whether the socket under has nothing left to do (nothing armed, nothing to send), so
    /// an unreferenced filtered socket may be freed.
    pub(super) fn under_quiet(&self) -> bool {
        let Some(layer) = &self.filter else {
            return true;
        };
        layer.under.try_borrow().is_ok_and(|u| {
            u.freed
                || (!u.reading.armed
                    && !u.writing.armed
                    && !u.connect.pending
                    && !u.rate_suspended()
                    && u.unsent() == 0
                    && !u.anything_due())
        })
    }

    /// Free the socket under (when ours is freed); returns its fd if it hands it back.
    pub(super) fn filter_teardown(&mut self, ops: &mut Registry<D>) -> Option<crate::fd::OwnedFd> {
        let layer = self.filter.take()?;
        let mut under = layer.under.try_borrow_mut().ok()?;
        under.teardown(ops)
    }
}

/// The socket under's callbacks, set by [`BufferedSocket::filtered`]: each runs our side of
/// the filter and schedules our callbacks.
pub(super) fn under_callback<D: 'static>(me: WeakShared<D>, which: Which) -> BevCallback<D> {
    Box::new(move |bev, _| {
        let Some(rc) = me.upgrade() else {
            return;
        };
        let Ok(mut st) = rc.try_borrow_mut() else {
            return;
        };
        if st.freed || st.filter.is_none() {
            return;
        }
        let (what, error) = (bev.what, bev.error.take());
        let (under, ops) = bev.parts();
        match which {
            Which::Read => st.filter_input(under, FlushMode::Normal),
            Which::Write => st.filter_output(under),
            Which::Event => {
                st.filter_event(what, error);
                st.filter_input(under, FlushMode::Normal);
            }
        }
        st.steer_under(under);
        // Due callbacks run from our deferred event; so does the check that frees a filtered
        // socket nobody holds once the socket under has nothing left to do. (One reference
        // is `rc` here.)
        if st.anything_due() || Rc::strong_count(&rc) <= INTERNAL_REFS + 1 {
            st.schedule(ops);
        }
    })
}
