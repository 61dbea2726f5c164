//! Unit tests of the iptables render on small hand-built states.
