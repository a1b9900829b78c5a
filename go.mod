module github.com/alphatoken/alphatoken

go 1.26.5

require (
	github.com/gomlx/compute v0.1.6
	github.com/gomlx/go-huggingface v0.4.3
	github.com/gomlx/go-xla v0.4.5
	github.com/gomlx/gomlx v0.28.8
	gonum.org/v1/plot v0.17.0
)

tool github.com/janpfeifer/gonb
