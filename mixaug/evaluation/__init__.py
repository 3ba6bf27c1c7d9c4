"""`mixaug eval`, by concern: `config` (EvalConfig, the arms and classifiers by name, methods), `arms` (the
named arms and the rows they add), `baselines` (EDA, embed-mixup, paraphrase), `classifiers` (the
classifiers each arm's rows are scored with), `run` (run_eval, the loop and its sections), `journal`
(resuming an interrupted eval), `outputs` (results, plots, report.md). Import each name from the module
that holds it."""
