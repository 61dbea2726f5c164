//! ipset sets as data: `ipset save` text parsed into typed sets, printed back byte for byte,
//! and membership tests as the kernel answers them.
//!
//! ```text
//!   create NAME TYPE opts…   -> IpSet { name, set_type, options }
//!   add NAME ELEM opts…      -> Entry { elem: Element { text, parts }, options }
//!   Sets::contains("KUBE-CLUSTER-IP", &[dst, dst]) -> Some(true | false) | None (unknown set)
//! ```
//! Options the code does not know are kept as raw words in order. Elements of set types it
//! does not model keep their text; membership of such sets is `None`.

mod member;
mod model;

pub use model::{
    CreateOption, ElemPart, Element, Entry, EntryOption, IpSet, IpsetError, SetType, Sets,
};
