//! What happens when a push reaches the deploy branch: build the image from the pushed
//! revision (with its Dockerfile, or else with buildpacks), push it to the registry, deploy
//! it with helm. Any failure rejects the push, so the repository's refs always name what was
//! built and deployed last.

pub mod build;
pub mod buildkit;
pub mod buildpack;
pub mod commands;
pub mod context;
pub mod dockerignore;
pub mod engine;
pub mod exposed;
mod failure;
pub mod hook;
pub mod options;
pub mod registry;
pub mod retention;
pub mod user;
