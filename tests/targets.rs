//! Which backend each target selects, proved on any host: `src/targets.rs` is a pure table, so
//! macOS, the BSDs, illumos and Windows are checked here on Linux. It is also the only list of
//! systems: every build script derives its `cfg` aliases from it (`cfg_aliases`), so there is
//! no second list to check it against; the cross-target checks in `.ci/run` compile each
//! backend crate for every system it names.

use evloop::targets::{
    backends_for, cfg_aliases, compiled_backends, polling_is_o1, CFG_ALIASES, PREFERENCE,
};

/// Every `(target_os, target_family)` the project names, and two Unixes it does not.
const SYSTEMS: [(&str, &str); 14] = [
    ("linux", "unix"),
    ("android", "unix"),
    ("macos", "unix"),
    ("ios", "unix"),
    ("freebsd", "unix"),
    ("netbsd", "unix"),
    ("openbsd", "unix"),
    ("dragonfly", "unix"),
    ("illumos", "unix"),
    ("solaris", "unix"),
    ("windows", "windows"),
    ("haiku", "unix"),
    ("aix", "unix"),
    ("hurd", "unix"),
];

const DEFAULT: &[&str] = &["epoll", "kqueue", "poll", "select", "native-polling"];

fn with_polling() -> Vec<&'static str> {
    let mut f = DEFAULT.to_vec();
    f.push("polling");
    f
}

#[test]
fn kqueue_comes_first_on_macos_and_every_bsd() {
    for os in ["macos", "ios", "freebsd", "netbsd", "openbsd", "dragonfly"] {
        assert_eq!(
            compiled_backends(os, "unix", DEFAULT),
            ["kqueue", "poll", "select"],
            "{os}"
        );
        assert_eq!(
            compiled_backends(os, "unix", &with_polling()),
            ["kqueue", "polling", "poll", "select"],
            "{os} with the polling feature"
        );
    }
}

#[test]
fn epoll_comes_first_on_linux_and_android() {
    for os in ["linux", "android"] {
        assert_eq!(
            compiled_backends(os, "unix", DEFAULT),
            ["epoll", "poll", "select"]
        );
        assert_eq!(
            compiled_backends(os, "unix", &with_polling()),
            ["epoll", "polling", "poll", "select"]
        );
    }
}

#[test]
fn the_polling_adapter_comes_first_on_illumos_solaris_and_windows() {
    for os in ["illumos", "solaris"] {
        // No select: rustix has no caller-sized select there.
        assert_eq!(compiled_backends(os, "unix", DEFAULT), ["polling", "poll"]);
        // Without default features the adapter is off there too, as any backend would be.
        assert_eq!(compiled_backends(os, "unix", &["poll"]), ["poll"]);
    }
    assert_eq!(
        compiled_backends("windows", "windows", DEFAULT),
        ["polling", "select"]
    );
}

#[test]
fn other_unixes_get_poll() {
    for os in ["haiku", "aix", "hurd"] {
        assert_eq!(compiled_backends(os, "unix", DEFAULT), ["poll"]);
        assert_eq!(
            compiled_backends(os, "unix", &with_polling()),
            ["polling", "poll"]
        );
    }
}

#[test]
fn every_list_follows_the_preference_order() {
    for (os, family) in SYSTEMS {
        let list = backends_for(os, family);
        let mut ranks = list
            .iter()
            .map(|b| PREFERENCE.iter().position(|p| p == b).unwrap());
        let mut last = ranks.next().unwrap_or(0);
        for r in ranks {
            assert!(r > last, "{os}: {list:?}");
            last = r;
        }
    }
}

#[test]
fn each_backend_crate_is_gated_where_the_table_says_it_exists() {
    for (os, family) in SYSTEMS {
        let cfgs = cfg_aliases(os, family);
        for (backend, cfg) in [
            ("epoll", "has_epoll"),
            ("kqueue", "has_kqueue"),
            ("select", "has_select"),
        ] {
            assert_eq!(
                cfgs.contains(&cfg),
                backends_for(os, family).contains(&backend),
                "{os}: {cfg}"
            );
        }
        assert_eq!(
            cfgs.contains(&"polling_native"),
            compiled_backends(os, family, &["native-polling"]) == ["polling"],
            "{os}: polling_native is where the default features compile the adapter"
        );
        assert_eq!(
            cfgs.contains(&"polling_o1"),
            polling_is_o1(os, family),
            "{os}"
        );
        // The wake-up filter exists only where kqueue does.
        assert!(
            !cfgs.contains(&"has_evfilt_user") || cfgs.contains(&"has_kqueue"),
            "{os}"
        );
        for cfg in &cfgs {
            assert!(CFG_ALIASES.contains(cfg), "{os}: {cfg} is not declared");
        }
    }
    assert!(cfg_aliases("illumos", "unix").contains(&"polling_o1"));
    assert!(!cfg_aliases("haiku", "unix").contains(&"polling_o1"));
    assert_eq!(
        cfg_aliases("windows", "windows"),
        ["has_select", "polling_o1", "polling_native"]
    );
}

#[test]
fn this_build_compiles_what_the_table_says() {
    let family = if cfg!(windows) { "windows" } else { "unix" };
    let exists = backends_for(std::env::consts::OS, family);
    for name in evloop::supported_methods() {
        assert!(
            exists.contains(&name),
            "{name} compiled where it does not exist"
        );
    }
    for name in PREFERENCE {
        assert_eq!(
            evloop::backend::by_name(name).is_ok(),
            evloop::supported_methods().contains(&name),
            "{name}: backend::by_name and supported_methods disagree"
        );
    }
}
