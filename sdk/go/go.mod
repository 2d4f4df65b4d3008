module corbel.dev/sdk

go 1.24
