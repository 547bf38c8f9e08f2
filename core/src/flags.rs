//! Small bit sets: what an event watches ([`EventFlags`]), how the loop runs ([`LoopFlags`]) and
//! what a backend can do ([`Features`]). (`BevEvent`, the buffered socket's, is in `bufio`.)
//!
//! The bit values of [`EventFlags`] are libevent's `EV_*` values, so a reader who knows
//! libevent can read a debug print; nothing depends on that beyond convenience.

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
    /// What an event watches for, and (in a callback) why it ran.
    ///
    /// As an event's *interest*: any of [`READ`](Self::READ), [`WRITE`](Self::WRITE),
    /// [`CLOSED`](Self::CLOSED), plus the modifiers [`PERSIST`](Self::PERSIST) and
    /// [`ET`](Self::ET). As a callback's *result*: the subset of READ, WRITE, CLOSED,
    /// [`TIMEOUT`](Self::TIMEOUT) and [`SIGNAL`](Self::SIGNAL) that made it run (or whatever was
    /// passed to a manual activation).
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::EventFlags;
    /// let interest = EventFlags::READ | EventFlags::PERSIST;
    /// assert!(interest.contains(EventFlags::READ));
    /// assert!(!interest.intersects(EventFlags::WRITE | EventFlags::CLOSED));
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
