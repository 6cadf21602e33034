//! In-process adapters: everything lives in this process's memory and is
//! gone when it exits.

mod accounts;
mod broadcaster;
mod lock;
mod repository;

pub use accounts::MemoryAccounts;
pub use broadcaster::MemoryBroadcaster;
pub use lock::MemoryLock;
pub use repository::MemoryRepository;
