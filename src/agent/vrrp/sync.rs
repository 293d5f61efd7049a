//! Sync groups (keepalived's `vrrp_sync_group`): what each member of a
//! group tells the others, and what it makes of theirs. Pure; the shared
//! table travels on a `watch` channel between the members' loops
//! ([`super::instance`]).
//!
//! Each member publishes its state and its *own* fault (its interface,
//! its tracked objects), never the fault it took from the group: a member
//! whose own fault clears releases the others, instead of each holding
//! the rest in fault for ever. Master and backup need nothing here:
//! validation makes every member rank the directors alike, so elections
//! move them together.

use std::collections::BTreeMap;

use crate::agent::vrrp::fsm::State;

/// What one member says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its state.
    pub state: State,
    /// Why it cannot work, of itself.
    pub fault: Option<String>,
}

/// Every member, by instance name.
pub type Members = BTreeMap<String, Member>;

/// Why `me` must be in fault because of another member of `group`: the
/// first other member with a fault of its own.
pub(crate) fn group_fault(
    group: &str,
    me: &str,
    members: &Members,
) -> Option<String> {
    members.iter().filter(|(name, _)| name.as_str() != me).find_map(
        |(name, m)| {
            let why = m.fault.as_ref()?;
            Some(format!("sync group {group}: {name} is in fault ({why})"))
        },
    )
}

/// The state every one of `expected` members is in, once all have
/// reported the same.
pub(crate) fn group_state(members: &Members, expected: usize) -> Option<State> {
    let mut states = members.values().map(|m| m.state);
    let first = states.next()?;
    (members.len() == expected && states.all(|s| s == first)).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(state: State, fault: Option<&str>) -> Member {
        Member { state, fault: fault.map(Into::into) }
    }

    #[test]
    fn one_members_own_fault_faults_the_others() {
        let mut g = Members::new();
        g.insert("VI_1".into(), m(State::Master, None));
        g.insert("VI_2".into(), m(State::Master, None));
        assert_eq!(group_fault("VG", "VI_1", &g), None);
        g.insert("VI_2".into(), m(State::Fault, Some("eth1 is down")));
        assert_eq!(
            group_fault("VG", "VI_1", &g).as_deref(),
            Some("sync group VG: VI_2 is in fault (eth1 is down)")
        );
        assert_eq!(group_fault("VG", "VI_2", &g), None, "not from itself");
    }

    #[test]
    fn the_group_is_in_a_state_once_every_member_is() {
        let mut g = Members::new();
        g.insert("VI_1".into(), m(State::Fault, None));
        assert_eq!(group_state(&g, 2), None, "one member not heard yet");
        g.insert("VI_2".into(), m(State::Backup, None));
        assert_eq!(group_state(&g, 2), None);
        g.insert("VI_2".into(), m(State::Fault, Some("x")));
        assert_eq!(group_state(&g, 2), Some(State::Fault));
    }
}
