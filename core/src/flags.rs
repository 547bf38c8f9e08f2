//! Small bit sets: what an fd event watches ([`Interest`]), why a callback ran ([`Fired`]),
//! the two together as the core and the backends see them ([`EventFlags`]), how the loop
//! runs ([`LoopFlags`]) and what a backend can do ([`Features`]); whether a timer repeats
//! ([`TimerKind`]). (`BevEvent`, the buffered socket's, is in `bufio`.)
//!
//! A user says what to watch with an [`Interest`] and learns what happened from a [`Fired`]:
//! two types, so that a constructor cannot be given a result flag (`SIGNAL`, `TIMEOUT`) nor a
//! timer an fd flag, which before failed only at run time. Both keep libevent's `EV_*` bit
//! values, which [`EventFlags`] shares, so converting between them is free and a debug print
//! reads as libevent's would.

/// Defines a bit set type with libevent-style flag constants, the set operations, and a
/// `Debug` that prints `A|B`. Used here and for `BevEvent` in `bufio`.
macro_rules! flag_set {
    (
        $(#[$meta:meta])*
        $name:ident: $repr:ty {
            $( $(#[$fmeta:meta])* $flag:ident = $value:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name($repr);

        impl $name {
            $( $(#[$fmeta])* pub const $flag: Self = Self($value); )*

            /// The empty set.
            pub const fn empty() -> Self {
                Self(0)
            }
            /// The raw bits.
            pub const fn bits(self) -> $repr {
                self.0
            }
            /// The set with exactly these bits, or `None` if an unknown bit is set.
            pub const fn from_bits(bits: $repr) -> Option<Self> {
                if bits & !Self::all().0 == 0 { Some(Self(bits)) } else { None }
            }
            /// Every defined flag.
            pub const fn all() -> Self {
                Self(0 $(| $value)*)
            }
            /// Whether no flag is set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }
            /// Whether every flag of `other` is set in `self`.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }
            /// Whether any flag of `other` is set in `self`.
            pub const fn intersects(self, other: Self) -> bool {
                self.0 & other.0 != 0
            }
            /// `self` with the flags of `other` removed.
            pub const fn without(self, other: Self) -> Self {
                Self(self.0 & !other.0)
            }
            /// `self` with the flags of `other` added.
            pub const fn union(self, other: Self) -> Self {
                Self(self.0 | other.0)
            }
        }

        impl ::std::ops::BitOr for $name {
            type Output = Self;
            fn bitor(self, rhs: Self) -> Self {
                Self(self.0 | rhs.0)
            }
        }
        impl ::std::ops::BitOrAssign for $name {
            fn bitor_assign(&mut self, rhs: Self) {
                self.0 |= rhs.0;
            }
        }
        impl ::std::ops::BitAnd for $name {
            type Output = Self;
            fn bitand(self, rhs: Self) -> Self {
                Self(self.0 & rhs.0)
            }
        }
        impl ::std::ops::BitAndAssign for $name {
            fn bitand_assign(&mut self, rhs: Self) {
                self.0 &= rhs.0;
            }
        }
        impl ::std::ops::Not for $name {
            type Output = Self;
            fn not(self) -> Self {
                Self(!self.0 & Self::all().0)
            }
        }
        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                let mut first = true;
                $(
                    if self.contains(Self::$flag) && $value != 0 {
                        if !first { f.write_str("|")?; }
                        f.write_str(stringify!($flag))?;
                        first = false;
                    }
                )*
                if first { f.write_str("(empty)")?; }
                Ok(())
            }
        }
    };
}
pub(crate) use flag_set;

flag_set! {
    /// Interest and result flags in one set, as the core keeps an event's and a
    /// [`Backend`](crate::Backend) is told (`change`) and reports (`ReadyList`). Users of the
    /// loop meet [`Interest`] and [`Fired`] instead, which convert into it.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::{EventFlags, Interest};
    /// let flags = EventFlags::from(Interest::READ | Interest::ET);
    /// assert!(flags.contains(EventFlags::READ | EventFlags::ET));
    /// ```
    EventFlags: u16 {
        /// The event's timeout expired (result only; libevent's `EV_TIMEOUT`).
        TIMEOUT = 0x01,
        /// The fd is readable.
        READ = 0x02,
        /// The fd is writable.
        WRITE = 0x04,
        /// A signal was delivered (reserved for signal events).
        SIGNAL = 0x08,
        /// The event stays pending after its callback runs.
        PERSIST = 0x10,
        /// Edge-triggered: report a change of readiness once, not a level.
        ET = 0x20,
        /// The peer closed the connection (`EPOLLRDHUP`, `POLLRDHUP`, or emulated).
        CLOSED = 0x80,
    }
}

flag_set! {
    /// What an fd event watches for, and how: the readiness it waits for ([`READ`](Self::READ),
    /// [`WRITE`](Self::WRITE), [`CLOSED`](Self::CLOSED)) and the modifiers
    /// [`PERSIST`](Self::PERSIST) and [`ET`](Self::ET). Given to the fd event constructors
    /// ([`Registry::new_owned_event`](crate::Registry::new_owned_event) and its siblings) and to
    /// a buffered socket's `enable`/`disable`, where READ and WRITE are its directions.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::Interest;
    /// let interest = Interest::READ | Interest::PERSIST;
    /// assert!(interest.contains(Interest::READ));
    /// assert!(!interest.intersects(Interest::WRITE | Interest::CLOSED));
    /// ```
    ///
    /// A signal is not something an fd event watches: this does not compile (a signal event is
    /// [`new_signal`](crate::Registry::new_signal)).
    ///
    /// ```compile_fail
    /// let mut base: evloop::Base = evloop::new_base()?;
    /// let fd = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// base.new_owned_event(fd, evloop::Interest::READ | evloop::Interest::SIGNAL, |_, _| {})?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    Interest: u16 {
        /// The fd is readable.
        READ = 0x02,
        /// The fd is writable.
        WRITE = 0x04,
        /// The event stays pending after its callback runs.
        PERSIST = 0x10,
        /// Edge-triggered: report a change of readiness once, not a level.
        ET = 0x20,
        /// The peer closed the connection (`EPOLLRDHUP`, `POLLRDHUP`, or emulated).
        CLOSED = 0x80,
    }
}

flag_set! {
    /// Why a callback ran: what [`Context::fired`](crate::Context::fired) says, and what a
    /// manual activation ([`Registry::activate`](crate::Registry::activate),
    /// [`Handle::activate`](crate::Handle::activate)) passes. The subset of
    /// [`READ`](Self::READ), [`WRITE`](Self::WRITE) and [`CLOSED`](Self::CLOSED) of the fd that
    /// was ready, [`TIMEOUT`](Self::TIMEOUT) for an expired timer, [`SIGNAL`](Self::SIGNAL) for a
    /// delivered signal; the union of them when several activations merged.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::Fired;
    /// let fired = Fired::READ | Fired::TIMEOUT;
    /// assert!(fired.contains(Fired::TIMEOUT));
    /// assert_eq!(format!("{fired:?}"), "TIMEOUT|READ");
    /// ```
    ///
    /// A fired set holds no mode: this does not compile.
    ///
    /// ```compile_fail
    /// let _ = evloop::Fired::PERSIST;
    /// ```
    Fired: u16 {
        /// The event's timeout expired (libevent's `EV_TIMEOUT`).
        TIMEOUT = 0x01,
        /// The fd is readable.
        READ = 0x02,
        /// The fd is writable.
        WRITE = 0x04,
        /// A signal was delivered.
        SIGNAL = 0x08,
        /// Reported with the readiness of an edge-triggered event (as libevent's epoll
        /// reports `EV_ET`).
        ET = 0x20,
        /// The peer closed the connection.
        CLOSED = 0x80,
    }
}

impl From<Interest> for EventFlags {
    fn from(interest: Interest) -> Self {
        // Same bit values: see the module note.
        Self(interest.bits())
    }
}

impl From<Fired> for EventFlags {
    fn from(fired: Fired) -> Self {
        Self(fired.bits())
    }
}

impl Fired {
    /// The result flags among `flags` (an activation's, as the core keeps them).
    pub(crate) const fn of(flags: EventFlags) -> Self {
        Self(flags.0 & Self::all().0)
    }
}

impl Interest {
    /// The interest flags among `flags` (a buffered socket's directions, as kept).
    pub(crate) const fn of(flags: EventFlags) -> Self {
        Self(flags.0 & Self::all().0)
    }
}

/// Whether a timer runs once per [`add`](crate::Registry::add) or repeats
/// ([`Registry::new_timer`](crate::Registry::new_timer)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop::{Base, TimerKind};
/// let mut base: Base<u32> = evloop::new_base()?;
/// let tick = base.new_timer(TimerKind::Periodic, |ctx, n: &mut u32| {
///     *n += 1;
///     if *n == 3 {
///         ctx.loop_break();
///     }
/// })?;
/// base.add(tick, Some(Duration::from_millis(1)))?;
/// let mut n = 0;
/// base.run(&mut n)?;
/// assert_eq!(n, 3);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// A timer watches no fd: this does not compile.
///
/// ```compile_fail
/// let mut base: evloop::Base = evloop::new_base()?;
/// base.new_timer(evloop::Interest::READ, |_, _| {})?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// Runs once per `add`, then is no longer pending.
    OneShot,
    /// Re-armed with the same timeout after each run (PERSIST), until deleted.
    Periodic,
}

impl TimerKind {
    pub(crate) fn flags(self) -> EventFlags {
        match self {
            TimerKind::OneShot => EventFlags::empty(),
            TimerKind::Periodic => EventFlags::PERSIST,
        }
    }
}

impl EventFlags {
    /// The flags that make an event watch its fd.
    pub const IO: Self = Self(Self::READ.0 | Self::WRITE.0 | Self::CLOSED.0);
    /// A prepare watcher's kind (see `hooks`). The three kinds are the core's own bits,
    /// outside [`all`](Self::all): no user can pass them, and they never reach a backend.
    pub(crate) const PREPARE: Self = Self(0x100);
    /// A check watcher's kind.
    pub(crate) const CHECK: Self = Self(0x200);
    /// An idle watcher's kind.
    pub(crate) const IDLE: Self = Self(0x400);
    /// Any of the three kinds of loop hook.
    pub(crate) const HOOK: Self = Self(0x700);
}

flag_set! {
    /// How one call to [`Base::run_with`](crate::Base::run_with) runs the loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::LoopFlags;
    /// let flags = LoopFlags::ONCE | LoopFlags::NONBLOCK;
    /// assert!(flags.contains(LoopFlags::NONBLOCK));
    /// ```
    LoopFlags: u8 {
        /// Wait until something is active, run the active callbacks — and, in further passes,
        /// those they activate — until none is active, then return.
        ONCE = 0x01,
        /// Poll once without waiting, run what is active (what its callbacks activate waits
        /// for the next run), then return.
        NONBLOCK = 0x02,
        /// Keep running when no event is registered, until `loop_exit` or `loop_break`.
        NO_EXIT_ON_EMPTY = 0x04,
        /// With `NONBLOCK`: keep making passes while a pass found something active, and return
        /// at the first that found nothing (libevent's `EVLOOP_NONBLOCK`), so I/O a callback
        /// triggers is handled before the run returns. A persistent timer with a zero interval
        /// is active at every pass, so it keeps such a run going, as in libevent.
        UNTIL_IDLE = 0x08,
    }
}

flag_set! {
    /// What a backend can do (libevent's `EV_FEATURE_*`).
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::Features;
    /// let f = Features::EDGE_TRIGGERED | Features::O1;
    /// assert!(f.contains(Features::O1));
    /// ```
    Features: u8 {
        /// Edge-triggered readiness ([`EventFlags::ET`]).
        EDGE_TRIGGERED = 0x01,
        /// Adding, deleting and dispatching one event costs O(1), whatever the fd count.
        O1 = 0x02,
        /// Any kind of fd works, regular files included (epoll refuses those).
        FDS = 0x04,
        /// The kernel reports a peer's close ([`EventFlags::CLOSED`]) without a read.
        EARLY_CLOSE = 0x08,
        /// An fd closed while an event still watches it is survived: reported to the event,
        /// or dropped by the kernel, never a hang. Not so for the `polling` adapter on Windows,
        /// whose IOCP poller requires a socket to be deleted before it is closed.
        CLOSE_TOLERANT = 0x10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_and_debug() {
        let f = EventFlags::READ | EventFlags::WRITE;
        assert_eq!(f & EventFlags::READ, EventFlags::READ);
        assert_eq!(f.without(EventFlags::READ), EventFlags::WRITE);
        assert!((!f).contains(EventFlags::TIMEOUT));
        assert!(!(!f).intersects(f));
        assert_eq!(format!("{f:?}"), "READ|WRITE");
        assert_eq!(format!("{:?}", EventFlags::empty()), "(empty)");
        assert_eq!(EventFlags::from_bits(0x40), None);
        assert_eq!(EventFlags::from_bits(0x02), Some(EventFlags::READ));
    }
}
