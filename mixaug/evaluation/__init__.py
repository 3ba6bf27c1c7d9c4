"""`mixaug eval`, by concern: `arms` (the named arms and the rows they add), `run` (run_eval, the loop and
its sections), `journal` (resuming an interrupted eval), `outputs` (results, plots, report.md).
`mixaug.evaluate` names them all in one import."""
