//! Corbel storage controller: reconciles `ObjectStore` and `Bucket` objects
//! (group `storage.corbel.dev`) into buckets on an S3-compatible store.

pub mod s3;
