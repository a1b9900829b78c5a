package minibench_test

import (
	"fmt"

	"github.com/alphatoken/alphatoken/ablations/minibench"
)

func ExampleExtractGSMAnswer() {
	fmt.Println(minibench.ExtractGSMAnswer(" 7+5=12. 12-3=9.\n#### 9"))
	fmt.Println(minibench.ExtractGSMAnswer("#### 1,234 apples"))
	fmt.Println(minibench.ExtractGSMAnswer("I do not know."))
	// Output:
	// 9 true
	// 1234 true
	//  false
}

func ExampleJudgeCode() {
	tests := []minibench.CodeTest{{X: 0, Want: 7}, {X: 2, Want: 13}}
	fmt.Println(minibench.JudgeCode(tests, "def f(x):\n  return x*3+7"))
	fmt.Println(minibench.JudgeCode(tests, "def f(x):\n  return x*3+7\n\nTask: (ignored by the stop rule)"))
	fmt.Println(minibench.JudgeCode(tests, "def f(x):\n  return 7//(x-x)"))
	fmt.Println(minibench.JudgeCode(tests, "def f(x):\n  for i in range(10**9):"))
	// Output:
	// true
	// true
	// false
	// false
}

func ExampleRunProgram() {
	v, err := minibench.RunProgram("def f(x):\n  s=4\n  for i in range(x):\n    s=s+3\n  return s", 5)
	fmt.Println(v, err)
	_, err = minibench.RunProgram("def f(x):\n  return x//0", 5)
	fmt.Println(err)
	// Output:
	// 19 <nil>
	// minipy: division by zero
}

func ExampleBuild() {
	cfg := minibench.DefaultConfig()
	cfg.CorpusDocs, cfg.ProbeItems, cfg.TrainSize, cfg.TestSize, cfg.FisherSize = 50, 20, 100, 20, 16
	b, err := minibench.Build(cfg)
	if err != nil {
		panic(err)
	}
	it := b.Code.Test[0]
	fmt.Println(len(b.Corpus), len(b.HellaSwag), len(b.Code.Train), len(b.Code.Val))
	fmt.Println(b.Code.Judge(it, it.Reference), b.Chance()["mmlu"])
	// Output:
	// 50 20 100 64
	// true 0.25
}
