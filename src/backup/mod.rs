//! Cinder-style volume backups (`rbdkit backup`, `rbdkit restore`, `rbdkit backup ls`):
//! a full backup of an RBD volume into a base image in the backup pool, then incrementals that
//! send only what changed between the previous backup snapshot and a new one, with the names
//! Cinder's Ceph backup driver uses ([`names`]) so either tool restores the other's chains.
//! The bytes move through the one copy engine; this module decides what to copy and when a
//! backup becomes visible, and never prints.
pub mod chain;
pub mod diff_format;
pub mod digests;
pub mod file;
pub mod from_diff;
pub mod names;
pub mod rbd;
pub mod remove;
pub mod restore;
pub mod to_diff;
