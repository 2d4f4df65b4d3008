//! A small S3 client: AWS Signature V4 and the bucket operations the controller needs.
