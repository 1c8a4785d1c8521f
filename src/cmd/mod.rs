pub mod backup;
pub mod maint;
pub mod read;
pub mod repo;
