//! In-memory [`MemoryAccess`] for tests and fuzzing (not for the data
//! path: it allocates).

use crate::mem::{Access, MemError, MemoryAccess};

/// One fake memory region.
#[derive(Debug, Clone)]
pub struct Region {
    /// Key (lkey and rkey).
    pub key: u32,
    /// Start address.
    pub addr: u64,
    /// Contents.
    pub data: Vec<u8>,
    /// Allowed accesses.
    pub access: Vec<Access>,
}

/// A set of regions.
#[derive(Debug, Clone, Default)]
pub struct FakeMemory {
    /// The regions.
    pub regions: Vec<Region>,
}

/// Every access right.
pub const ALL_ACCESS: [Access; 5] = [
    Access::LocalRead,
    Access::LocalWrite,
    Access::RemoteRead,
    Access::RemoteWrite,
    Access::RemoteAtomic,
];

impl FakeMemory {
    /// Adds a region of `len` bytes filled with `fill`.
    pub fn add(&mut self, key: u32, addr: u64, data: Vec<u8>, access: &[Access]) {
        self.regions.push(Region {
            key,
            addr,
            data,
            access: access.to_vec(),
        });
    }

    /// The region with `key`.
    pub fn region(&self, key: u32) -> Option<&Region> {
        self.regions.iter().find(|r| r.key == key)
    }

    /// Mutable region with `key`.
    pub fn region_mut(&mut self, key: u32) -> Option<&mut Region> {
        self.regions.iter_mut().find(|r| r.key == key)
    }

    fn range(
        &self,
        key: u32,
        addr: u64,
        len: u64,
        access: Access,
    ) -> Result<(usize, usize), MemError> {
        let r = self.region(key).ok_or(MemError::InvalidKey)?;
        if !r.access.contains(&access) {
            return Err(MemError::AccessDenied);
        }
        let start = addr.checked_sub(r.addr).ok_or(MemError::OutOfBounds)?;
        let end = start.checked_add(len).ok_or(MemError::OutOfBounds)?;
        if end > r.data.len() as u64 {
            return Err(MemError::OutOfBounds);
        }
        Ok((start as usize, end as usize))
    }
}

impl MemoryAccess for FakeMemory {
    fn check(&self, key: u32, addr: u64, len: u64, access: Access) -> Result<(), MemError> {
        self.range(key, addr, len, access).map(|_| ())
    }

    fn read(&self, key: u32, addr: u64, dst: &mut [u8], access: Access) -> Result<(), MemError> {
        let (s, e) = self.range(key, addr, dst.len() as u64, access)?;
        let r = self.region(key).ok_or(MemError::InvalidKey)?;
        dst.copy_from_slice(&r.data[s..e]);
        Ok(())
    }

    fn write(&mut self, key: u32, addr: u64, src: &[u8], access: Access) -> Result<(), MemError> {
        let (s, e) = self.range(key, addr, src.len() as u64, access)?;
        let r = self.region_mut(key).ok_or(MemError::InvalidKey)?;
        r.data[s..e].copy_from_slice(src);
        Ok(())
    }
}
