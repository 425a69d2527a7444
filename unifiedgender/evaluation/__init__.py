"""Evaluation: metrics, subject-bootstrap CIs, fairness, thresholds, reports, plots and the run registry.

Entry point: `evaluate_predictions(predictions_frame, ...) -> (report dict, EvaluationTable)`.
"""
