module example.com/{{name}}

go 1.24

require corbel.dev/sdk v0.0.0

replace corbel.dev/sdk => {{sdk}}/go
