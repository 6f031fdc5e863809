"""A frame in, a mask and scores out: conversion, inference, metrics, reports (no ROS)."""
