"""Reads ParaView files with VTK itself and prints what the tests check, as JSON.

usage: vtk_read.py FILE.pvd | FILE.vtu ...
For a .pvd: its data sets (time, file). For each .vtu: cells, points, cell types, the volume of every cell
(vtkCellSizeFilter), every point and cell array, and the first value of each field data array (strings).
"""
import json
import sys
import xml.etree.ElementTree as ET

import vtk


def read_vtu(path):
    r = vtk.vtkXMLUnstructuredGridReader()
    r.SetFileName(path)
    r.Update()
    g = r.GetOutput()
    size = vtk.vtkCellSizeFilter()
    size.SetInputData(g)
    size.Update()
    vol = size.GetOutput().GetCellData().GetArray("Volume")

    def values(a):
        return [a.GetValue(i) for i in range(a.GetNumberOfTuples() * a.GetNumberOfComponents())]

    def arrays(data):
        return {data.GetArrayName(i): values(data.GetArray(i)) for i in range(data.GetNumberOfArrays())}

    return {
        "cells": g.GetNumberOfCells(),
        "points": g.GetNumberOfPoints(),
        "types": sorted({g.GetCellType(i) for i in range(g.GetNumberOfCells())}),
        "volumes": [vol.GetValue(i) for i in range(g.GetNumberOfCells())] if vol is not None else [],
        "cell_data": arrays(g.GetCellData()),
        "point_data": arrays(g.GetPointData()),
        "field_data": {
            g.GetFieldData().GetAbstractArray(i).GetName(): g.GetFieldData().GetAbstractArray(i).GetValue(0)
            for i in range(g.GetFieldData().GetNumberOfArrays())
        },
        "bounds": list(g.GetBounds()),
    }


out = {"vtk": vtk.vtkVersion.GetVTKVersion()}
for path in sys.argv[1:]:
    if path.endswith(".pvd"):
        root = ET.parse(path).getroot()
        out[path] = [{"time": float(d.get("timestep")), "file": d.get("file")} for d in root.iter("DataSet")]
    else:
        out[path] = read_vtu(path)
print(json.dumps(out))
