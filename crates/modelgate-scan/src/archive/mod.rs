//! Containers: zip (including PyTorch's tolerant reading), tar, 7z and
//! compression wrappers. Each walks its members and hands them back to the
//! scanner through `Ctx::scan_member`.

pub mod compress;
pub mod sevenz;
pub mod tar;
pub mod zip;
