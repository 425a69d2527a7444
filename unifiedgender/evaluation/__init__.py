"""Evaluation: metrics, subject-bootstrap CIs, fairness, thresholds, reports, plots and the run log.

Entry points: `run.run_evaluate(...) -> EvaluationResult` (`ugn evaluate`) and
`assess.evaluate_predictions(predictions_frame, ...) -> (report dict, EvaluationTable)`.
"""
