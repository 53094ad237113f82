"""Planning on real hardware: ``hepinfer profile`` measures serving configurations of each model
(:mod:`.profile`), ``hepinfer plan`` chooses configurations and places models on devices from
those profiles and a demand (:mod:`hepinfer.operations.planning.planner`, placing with :mod:`.packing`,
suggesting with :mod:`.suggestions`, on the data model of :mod:`.plan_data`); :mod:`.schema` is what
they share."""
