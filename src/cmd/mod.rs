pub mod agent;
pub mod backup;
pub mod export;
pub mod maint;
pub mod read;
pub mod replicate;
pub mod repo;
