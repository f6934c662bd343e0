package suite

func (s *Suite) crossEdge() *ScenarioResult { return &ScenarioResult{Name: "cross"} }
func (s *Suite) plots() error               { return nil }
