//! Rate limits on buffered sockets (libevent's `bufferevent_ratelim`): token buckets per
//! socket ([`RateLimit`]) and per group of sockets ([`RateLimitGroup`]).
//!
//! A bucket holds a number of bytes for each direction. Each tick adds the rate, up to the
//! burst; each read or write takes what it moved. A socket reads and writes at most what its
//! buckets hold; when one is empty, that direction stops (its event disarmed) and a one-shot
//! timer at the next tick resumes it. Buckets refill lazily, from the clock, when they are
//! looked at, so a socket that never empties its bucket costs no timer at all.
//!
//! A group's members share one bucket. So that the first socket to read in a tick cannot take
//! it all, each read or write of a member is capped at a share of what the bucket held when
//! the tick began, divided by the number of members, but never below the group's minimum
//! share (libevent's `min_share`, 64 bytes by default) — the share keeps small groups from
//! crawling a few bytes at a time. When the group's bucket runs dry, its one refill timer
//! wakes every member at the next tick, starting each time one member further along, so no
//! socket is always first.
//!
//! The limits apply to the bytes on the fd: the records of a TLS socket, and the bytes under
//! a filter (a filtered socket's limit is set on the socket under it).

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{busy, Registry, Shared, State, WeakShared, NO_FD};
use crate::event::EventId;

/// A token bucket's configuration (libevent's `ev_token_bucket_cfg`): bytes per tick and the
/// most that may build up, for reading and for writing, and the tick's length.
///
/// # Examples
///
/// 10 KiB/s each way, in ticks of 100 ms, with bursts of up to 4 KiB:
///
/// ```
/// use std::time::Duration;
/// use evloop::RateLimit;
///
/// let limit = RateLimit::new(1024, 4096, 1024, 4096, Duration::from_millis(100))?;
/// assert_eq!(limit.read_rate(), 1024);
/// assert!(RateLimit::new(1024, 512, 1024, 4096, Duration::from_millis(100)).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    read_rate: u64,
    read_burst: u64,
    write_rate: u64,
    write_burst: u64,
    tick: Duration,
}

impl RateLimit {
    /// No limit in that direction: pass it as a rate and a burst.
    pub const UNLIMITED: u64 = u64::MAX;

    /// `read_rate` and `write_rate` bytes per `tick`, and at most `read_burst` and
    /// `write_burst` bytes built up while a socket is idle. A bucket starts with one tick's
    /// worth.
    ///
    /// # Errors
    ///
    /// `InvalidInput` naming the value: a rate of 0 (nothing would ever move), a burst below
    /// its rate, a tick of zero.
    pub fn new(
        read_rate: u64,
        read_burst: u64,
        write_rate: u64,
        write_burst: u64,
        tick: Duration,
    ) -> io::Result<Self> {
        let invalid = |what: String| Err(io::Error::new(io::ErrorKind::InvalidInput, what));
        for (side, rate, burst) in [
            ("read", read_rate, read_burst),
            ("write", write_rate, write_burst),
        ] {
            if rate == 0 {
                return invalid(format!(
                    "rate limit: a {side} rate of 0 bytes per tick would never {side} anything"
                ));
            }
            if burst < rate {
                return invalid(format!(
                    "rate limit: the {side} burst ({burst} bytes) is below the {side} rate ({rate} bytes per tick)"
                ));
            }
        }
        if tick.is_zero() {
            return invalid("rate limit: a tick of zero length".to_string());
        }
        Ok(RateLimit {
            read_rate,
            read_burst,
            write_rate,
            write_burst,
            tick,
        })
    }

    /// Bytes per tick that may be read.
    pub fn read_rate(&self) -> u64 {
        self.read_rate
    }

    /// The most bytes that may be read at once after an idle spell.
    pub fn read_burst(&self) -> u64 {
        self.read_burst
    }

    /// Bytes per tick that may be written.
    pub fn write_rate(&self) -> u64 {
        self.write_rate
    }

    /// The most bytes that may be written at once after an idle spell.
    pub fn write_burst(&self) -> u64 {
        self.write_burst
    }

    /// The tick's length.
    pub fn tick(&self) -> Duration {
        self.tick
    }
}

/// Which direction a bucket is asked about.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(super) enum Dir {
    Read,
    Write,
}

/// A bucket's levels. They go below zero only when a group is drained by hand.
#[derive(Debug)]
struct TokenBucket {
    limit: RateLimit,
    read: i64,
    write: i64,
    /// The start of the current tick.
    tick_start: Instant,
}

fn level_of(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

impl TokenBucket {
    fn new(limit: RateLimit, now: Instant) -> Self {
        TokenBucket {
            limit,
            read: level_of(limit.read_rate),
            write: level_of(limit.write_rate),
            tick_start: now,
        }
    }

    /// A new configuration on a live bucket: levels are only clipped down (this tick's
    /// bytes may be spent already), as libevent does.
    fn reconfigure(&mut self, limit: RateLimit) {
        self.limit = limit;
        self.read = self.read.min(level_of(limit.read_burst));
        self.write = self.write.min(level_of(limit.write_burst));
    }

    /// Add the rate for each tick that began since the last refill; returns whether one did.
    fn refill(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.tick_start);
        let tick = self.limit.tick.as_nanos();
        let ticks = elapsed.as_nanos() / tick;
        if ticks == 0 {
            return false;
        }
        let ticks = u64::try_from(ticks).unwrap_or(u64::MAX);
        let add = |level: i64, rate: u64, burst: u64| {
            let added = level_of(rate.saturating_mul(ticks));
            level.saturating_add(added).min(level_of(burst))
        };
        self.read = add(self.read, self.limit.read_rate, self.limit.read_burst);
        self.write = add(self.write, self.limit.write_rate, self.limit.write_burst);
        // The current tick began at the last multiple of the tick length.
        let into_tick = (elapsed.as_nanos() % tick) as u64;
        self.tick_start = now - Duration::from_nanos(into_tick);
        true
    }

    fn level(&self, dir: Dir) -> i64 {
        match dir {
            Dir::Read => self.read,
            Dir::Write => self.write,
        }
    }

    fn spend(&mut self, dir: Dir, n: usize) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        match dir {
            Dir::Read => self.read = self.read.saturating_sub(n),
            Dir::Write => self.write = self.write.saturating_sub(n),
        }
    }

    fn next_tick(&self) -> Instant {
        self.tick_start + self.limit.tick
    }
}

/// A socket's rate-limit state.
pub(super) struct RateState<D> {
    /// The socket itself, for its refill timer.
    me: WeakShared<D>,
    bucket: Option<TokenBucket>,
    group: Option<Rc<RefCell<GroupState<D>>>>,
    /// The one-shot timer that resumes the socket at its bucket's next tick, while pending.
    timer: Option<EventId>,
    /// A direction waits for a bucket to refill (so the socket is not idle, whatever its
    /// events say).
    suspended: bool,
}

/// What the members of a group share.
pub(super) struct GroupState<D> {
    bucket: TokenBucket,
    min_share: u64,
    /// Each member's cap per read and per write in this tick.
    share: (u64, u64),
    members: Vec<WeakShared<D>>,
    /// The one-shot timer that wakes the members at the next tick, while pending.
    timer: Option<EventId>,
    /// Where the next wake-up starts, so no member is always first.
    next_first: usize,
    totals: (u64, u64),
}

impl<D> GroupState<D> {
    fn refill(&mut self, now: Instant) {
        if self.bucket.refill(now) {
            self.reshare();
        }
    }

    /// Each member's share of what the bucket holds now (at least `min_share`).
    fn reshare(&mut self) {
        let n = self.members.len().max(1) as u64;
        let share = |level: i64| (level.max(0) as u64 / n).max(self.min_share);
        self.share = (share(self.bucket.read), share(self.bucket.write));
    }

    fn cap(&self, dir: Dir) -> usize {
        let (level, share) = match dir {
            Dir::Read => (self.bucket.read, self.share.0),
            Dir::Write => (self.bucket.write, self.share.1),
        };
        usize::try_from(share.min(level.max(0) as u64)).unwrap_or(usize::MAX)
    }
}

impl<D: 'static> State<D> {
    /// The most bytes this socket may move in `dir` now (`usize::MAX` without limits).
    #[inline]
    pub(super) fn rate_cap(&mut self, dir: Dir) -> usize {
        if self.rate.is_none() {
            return usize::MAX;
        }
        self.limited_cap(dir)
    }

    /// `rate_cap` of a socket with limits, kept out of line so that the I/O paths of the
    /// others stay short.
    #[inline(never)]
    fn limited_cap(&mut self, dir: Dir) -> usize {
        let Some(rate) = self.rate.as_mut() else {
            return usize::MAX;
        };
        let now = Instant::now();
        let mut cap = usize::MAX;
        if let Some(bucket) = rate.bucket.as_mut() {
            bucket.refill(now);
            cap = usize::try_from(bucket.level(dir).max(0)).unwrap_or(usize::MAX);
        }
        if let Some(group) = &rate.group {
            match group.try_borrow_mut() {
                Ok(mut g) => {
                    g.refill(now);
                    cap = cap.min(g.cap(dir));
                }
                Err(_) => cap = 0,
            }
        }
        cap
    }

    /// `n` bytes moved in `dir`: take them from the buckets.
    #[inline]
    pub(super) fn rate_spend(&mut self, dir: Dir, n: usize) {
        let Some(rate) = self.rate.as_mut() else {
            return;
        };
        if let Some(bucket) = rate.bucket.as_mut() {
            bucket.spend(dir, n);
        }
        if let Some(group) = &rate.group {
            if let Ok(mut g) = group.try_borrow_mut() {
                g.bucket.spend(dir, n);
                match dir {
                    Dir::Read => g.totals.0 += n as u64,
                    Dir::Write => g.totals.1 += n as u64,
                }
            }
        }
    }

    /// Whether the buckets let `dir` go on; if not, make sure a timer resumes the socket
    /// when they refill (the socket's own, or its group's).
    #[inline]
    pub(super) fn rate_allows(&mut self, ops: &mut Registry<D>, dir: Dir) -> bool {
        self.rate.is_none() || self.rate_refills(ops, dir)
    }

    /// `rate_allows` of a socket with limits.
    #[inline(never)]
    fn rate_refills(&mut self, ops: &mut Registry<D>, dir: Dir) -> bool {
        if self.rate_cap(dir) > 0 {
            return true;
        }
        let rate = self.rate.as_mut().expect("checked above");
        rate.suspended = true;
        let own_empty = rate.bucket.as_ref().is_some_and(|b| b.level(dir) <= 0);
        if own_empty {
            if rate.timer.is_none() {
                let bucket = rate.bucket.as_ref().expect("checked above");
                let wait = bucket.next_tick().saturating_duration_since(Instant::now());
                let me = rate.me.clone();
                rate.timer = ops
                    .after(wait, move |ctx, _| {
                        if let Some(rc) = me.upgrade() {
                            if let Ok(mut st) = rc.try_borrow_mut() {
                                if let Some(rate) = st.rate.as_mut() {
                                    rate.timer = None;
                                    rate.suspended = false;
                                }
                                let _ = st.sync(ctx);
                            }
                        }
                    })
                    .ok();
            }
        } else if let Some(group) = &rate.group {
            arm_group_timer(group, ops);
        }
        false
    }

    /// Whether a direction waits for a bucket to refill.
    pub(super) fn rate_suspended(&self) -> bool {
        self.rate.as_ref().is_some_and(|r| r.suspended)
    }

    /// Set, change (`Some`) or remove (`None`) this socket's own limit. A change keeps what
    /// the bucket holds, clipped to the new bursts.
    pub(super) fn set_rate_limit(
        &mut self,
        ops: &mut Registry<D>,
        me: &Shared<D>,
        limit: Option<RateLimit>,
    ) -> io::Result<()> {
        if let Some(under) = self.filter.as_ref().map(|f| f.under.clone()) {
            let mut under_st = under.try_borrow_mut().map_err(|_| busy())?;
            return under_st.set_rate_limit(ops, &under, limit);
        }
        if self.fd == NO_FD {
            return Err(pair_error());
        }
        let rate = self.rate_state(me);
        match (limit, rate.bucket.as_mut()) {
            (Some(limit), Some(bucket)) => bucket.reconfigure(limit),
            (Some(limit), None) => rate.bucket = Some(TokenBucket::new(limit, Instant::now())),
            (None, _) => rate.bucket = None,
        }
        self.sync(ops)
    }

    fn rate_state(&mut self, me: &Shared<D>) -> &mut RateState<D> {
        self.rate.get_or_insert_with(|| {
            Box::new(RateState {
                me: Rc::downgrade(me),
                bucket: None,
                group: None,
                timer: None,
                suspended: false,
            })
        })
    }

    /// Leave the group and drop the refill timer (the socket is being freed).
    pub(super) fn rate_teardown(&mut self, ops: &mut Registry<D>) {
        let Some(mut rate) = self.rate.take() else {
            return;
        };
        if let Some(timer) = rate.timer.take() {
            let _ = ops.free(timer);
        }
        if let Some(group) = rate.group.take() {
            leave(&group, &rate.me, ops);
        }
    }

    /// The socket under a filtered one (which does the I/O), or this one.
    fn io_socket(&self, me: &Shared<D>) -> Shared<D> {
        self.filter
            .as_ref()
            .map_or_else(|| me.clone(), |f| f.under.clone())
    }
}

fn pair_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "rate limit: a pair has no fd, so nothing to limit",
    )
}

/// Arm the group's refill timer unless it is pending.
fn arm_group_timer<D: 'static>(group: &Rc<RefCell<GroupState<D>>>, ops: &mut Registry<D>) {
    let Ok(mut g) = group.try_borrow_mut() else {
        return;
    };
    if g.timer.is_some() {
        return;
    }
    let wait = g
        .bucket
        .next_tick()
        .saturating_duration_since(Instant::now());
    let weak = Rc::downgrade(group);
    g.timer = ops
        .after(wait, move |ctx, _| {
            let Some(group) = weak.upgrade() else {
                return;
            };
            let members = {
                let Ok(mut g) = group.try_borrow_mut() else {
                    return;
                };
                g.timer = None;
                g.refill(Instant::now());
                g.members.retain(|m| m.strong_count() > 0);
                let n = g.members.len();
                let first = if n == 0 { 0 } else { g.next_first % n };
                g.next_first = first + 1;
                let mut order = g.members.clone();
                order.rotate_left(first);
                order
            };
            // The group is not borrowed now: syncing a member looks at it.
            for member in members {
                if let Some(rc) = member.upgrade() {
                    if let Ok(mut st) = rc.try_borrow_mut() {
                        if let Some(rate) = st.rate.as_mut() {
                            rate.suspended = false;
                        }
                        let _ = st.sync(ctx);
                    }
                }
            }
        })
        .ok();
}

/// Take `me` out of `group`; the group's timer goes with its last member.
fn leave<D>(group: &Rc<RefCell<GroupState<D>>>, me: &WeakShared<D>, ops: &mut Registry<D>) {
    let Ok(mut g) = group.try_borrow_mut() else {
        return;
    };
    g.members.retain(|m| !m.ptr_eq(me) && m.strong_count() > 0);
    g.reshare();
    if g.members.is_empty() {
        if let Some(timer) = g.timer.take() {
            let _ = ops.free(timer);
        }
    }
}

/// Sockets sharing one token bucket (libevent's `bufferevent_rate_limit_group`), each also
/// held to its own [`RateLimit`] if it has one. A socket is in at most one group: adding it
/// to another moves it. Cloning the handle is cheap; the group lives while a handle or a
/// member does.
///
/// # Examples
///
/// Two sockets that together read at most 64 KiB per second:
///
/// ```
/// use std::time::Duration;
/// use evloop::{BevOptions, BufferedSocket, RateLimit, RateLimitGroup};
///
/// let mut base: evloop::Base = evloop::new_base()?;
/// let limit = RateLimit::new(6554, 6554, 6554, 6554, Duration::from_millis(100))?;
/// let group = RateLimitGroup::new(limit);
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// for _ in 0..2 {
///     let _client = std::net::TcpStream::connect(listener.local_addr()?)?;
///     let (ours, _) = listener.accept()?;
///     ours.set_nonblocking(true)?;
///     let bev = BufferedSocket::new(&mut base, ours, BevOptions::default())?;
///     group.add(&mut base, &bev)?;
/// }
/// assert_eq!(group.len(), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct RateLimitGroup<D> {
    state: Rc<RefCell<GroupState<D>>>,
}

impl<D> Clone for RateLimitGroup<D> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }
}

impl<D> std::fmt::Debug for RateLimitGroup<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.state.try_borrow() {
            Ok(g) => f
                .debug_struct("RateLimitGroup")
                .field("limit", &g.bucket.limit)
                .field("members", &g.members.len())
                .finish(),
            Err(_) => f.write_str("RateLimitGroup(busy)"),
        }
    }
}

impl<D: 'static> RateLimitGroup<D> {
    /// A group whose members share one bucket of `limit`, with a minimum share of 64 bytes.
    pub fn new(limit: RateLimit) -> Self {
        let bucket = TokenBucket::new(limit, Instant::now());
        let mut g = GroupState {
            bucket,
            min_share: 64,
            share: (0, 0),
            members: Vec::new(),
            timer: None,
            next_first: 0,
            totals: (0, 0),
        };
        g.reshare();
        RateLimitGroup {
            state: Rc::new(RefCell::new(g)),
        }
    }

    fn group(&self) -> io::Result<std::cell::RefMut<'_, GroupState<D>>> {
        self.state.try_borrow_mut().map_err(|_| busy())
    }

    /// Add `bev` (for a filtered socket, the socket under it, which does the I/O), moving it
    /// out of any group it was in.
    ///
    /// # Errors
    ///
    /// `bev` was freed, or runs its own callback now; `Unsupported` for a pair (no fd).
    pub fn add(&self, ops: &mut Registry<D>, bev: &super::BufferedSocket<D>) -> io::Result<()> {
        let io = bev.with(|st| Ok(st.io_socket(&bev.state)))?;
        let mut st = io.try_borrow_mut().map_err(|_| busy())?;
        if st.fd == NO_FD {
            return Err(pair_error());
        }
        let rate = st.rate_state(&io);
        if let Some(old) = rate.group.take() {
            leave(&old, &rate.me, ops);
        }
        let me = rate.me.clone();
        rate.group = Some(self.state.clone());
        {
            let mut g = self.group()?;
            g.members.push(me);
            g.reshare();
        }
        st.sync(ops)
    }

    /// Take `bev` out of the group; it keeps its own limit, if any.
    ///
    /// # Errors
    ///
    /// `bev` was freed or runs its own callback now; `NotFound` if it is not a member.
    pub fn remove(&self, ops: &mut Registry<D>, bev: &super::BufferedSocket<D>) -> io::Result<()> {
        let io = bev.with(|st| Ok(st.io_socket(&bev.state)))?;
        let mut st = io.try_borrow_mut().map_err(|_| busy())?;
        let ours = st
            .rate
            .as_ref()
            .and_then(|r| r.group.as_ref())
            .is_some_and(|g| Rc::ptr_eq(g, &self.state));
        if !ours {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("rate limit group: fd {} is not a member", st.fd),
            ));
        }
        let rate = st.rate.as_mut().expect("a member has rate state");
        let group = rate.group.take().expect("checked above");
        leave(&group, &rate.me, ops);
        st.sync(ops)
    }

    /// Change the group's limit; what the bucket holds is clipped to the new bursts.
    ///
    /// # Errors
    ///
    /// Only if called from inside the group's own bookkeeping (never from a callback).
    pub fn set_limit(&self, limit: RateLimit) -> io::Result<()> {
        let mut g = self.group()?;
        g.bucket.reconfigure(limit);
        g.reshare();
        Ok(())
    }

    /// Set the smallest cap a member gets per read or write (libevent's
    /// `bufferevent_rate_limit_group_set_min_share`; 64 by default, 0 to share strictly).
    ///
    /// # Errors
    ///
    /// As [`set_limit`](Self::set_limit).
    pub fn set_min_share(&self, bytes: u64) -> io::Result<()> {
        let mut g = self.group()?;
        g.min_share = bytes;
        g.reshare();
        Ok(())
    }

    /// Take `n` bytes from the group's read bucket, as if they were read (libevent's
    /// `bufferevent_rate_limit_group_decrement_read`); it may go below zero.
    ///
    /// # Errors
    ///
    /// As [`set_limit`](Self::set_limit).
    pub fn decrement_read(&self, n: usize) -> io::Result<()> {
        self.group()?.bucket.spend(Dir::Read, n);
        Ok(())
    }

    /// Take `n` bytes from the group's write bucket; see
    /// [`decrement_read`](Self::decrement_read).
    ///
    /// # Errors
    ///
    /// As [`set_limit`](Self::set_limit).
    pub fn decrement_write(&self, n: usize) -> io::Result<()> {
        self.group()?.bucket.spend(Dir::Write, n);
        Ok(())
    }

    /// What the read and write buckets hold now.
    pub fn levels(&self) -> (i64, i64) {
        self.state.try_borrow_mut().map_or((0, 0), |mut g| {
            g.refill(Instant::now());
            (g.bucket.read, g.bucket.write)
        })
    }

    /// Bytes the members read and wrote since the group was made (libevent's
    /// `bufferevent_rate_limit_group_get_totals`).
    pub fn totals(&self) -> (u64, u64) {
        self.state.try_borrow().map_or((0, 0), |g| g.totals)
    }

    /// How many sockets are members.
    pub fn len(&self) -> usize {
        self.state.try_borrow().map_or(0, |g| {
            g.members.iter().filter(|m| m.strong_count() > 0).count()
        })
    }

    /// Whether the group has no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: u64, burst: u64) -> RateLimit {
        RateLimit::new(rate, burst, rate, burst, Duration::from_millis(100)).unwrap()
    }

    #[test]
    fn a_bucket_starts_with_one_tick_and_refills_by_whole_ticks_to_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(limit(100, 250), t0);
        assert_eq!((b.read, b.write), (100, 100));
        b.spend(Dir::Read, 100);
        assert!(!b.refill(t0 + Duration::from_millis(99)));
        assert_eq!(b.read, 0);
        assert!(b.refill(t0 + Duration::from_millis(150)));
        assert_eq!(b.read, 100);
        assert_eq!(b.next_tick(), t0 + Duration::from_millis(200));
        // Ten idle ticks fill it only to the burst.
        b.refill(t0 + Duration::from_secs(2));
        assert_eq!((b.read, b.write), (250, 250));
        // A smaller burst clips; a larger one adds nothing by itself.
        b.reconfigure(limit(100, 120));
        assert_eq!(b.read, 120);
        b.reconfigure(limit(100, 1000));
        assert_eq!(b.read, 120);
    }

    #[test]
    fn bad_limits_are_errors_naming_the_value() {
        let tick = Duration::from_millis(100);
        let e = RateLimit::new(0, 10, 10, 10, tick).unwrap_err();
        assert!(e.to_string().contains("read rate of 0"), "{e}");
        let e = RateLimit::new(10, 10, 10, 5, tick).unwrap_err();
        assert!(e.to_string().contains("write burst (5 bytes)"), "{e}");
        let e = RateLimit::new(10, 10, 10, 10, Duration::ZERO).unwrap_err();
        assert!(e.to_string().contains("tick of zero"), "{e}");
        let unlimited = RateLimit::UNLIMITED;
        let l = RateLimit::new(unlimited, unlimited, 10, 10, tick).unwrap();
        let mut b = TokenBucket::new(l, Instant::now());
        assert_eq!(b.read, i64::MAX);
        b.refill(Instant::now() + Duration::from_secs(3600));
        assert_eq!(b.read, i64::MAX, "no overflow");
    }

    #[test]
    fn a_group_share_is_the_level_over_the_members_but_at_least_the_minimum() {
        let mut g: GroupState<()> = GroupState {
            bucket: TokenBucket::new(limit(3000, 12000), Instant::now()),
            min_share: 64,
            share: (0, 0),
            members: (0..30).map(|_| std::rc::Weak::new()).collect(),
            timer: None,
            next_first: 0,
            totals: (0, 0),
        };
        g.reshare();
        assert_eq!(g.cap(Dir::Read), 100);
        g.bucket.spend(Dir::Read, 2950);
        assert_eq!(g.cap(Dir::Read), 50, "never more than the bucket holds");
        g.bucket.spend(Dir::Read, 100);
        assert_eq!(g.cap(Dir::Read), 0, "an overdrawn bucket gives nothing");
        g.bucket.read = 600;
        g.reshare();
        assert_eq!(g.cap(Dir::Read), 64, "the minimum share");
    }
}
