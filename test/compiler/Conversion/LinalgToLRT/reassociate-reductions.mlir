// RUN: llmp-opt %s --split-input-file --llmp-reassociate-reductions | FileCheck %s

// Tests that the combiners of a row sum and a row max may be reassociated.
// CHECK-LABEL: func.func @row_sum_max
// CHECK: arith.addf %{{.+}}, %{{.+}} fastmath<reassoc,contract> : f32
// CHECK: arith.maximumf %{{.+}}, %{{.+}} fastmath<reassoc,contract> : f32
#map_in = affine_map<(i, j) -> (i, j)>
#map_out = affine_map<(i, j) -> (i)>
func.func @row_sum_max(%x: memref<4x8xf32>, %s: memref<4xf32>, %m: memref<4xf32>) {
  linalg.generic {indexing_maps = [#map_in, #map_out], iterator_types = ["parallel", "reduction"]}
      ins(%x : memref<4x8xf32>) outs(%s : memref<4xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %a, %acc : f32
    linalg.yield %r : f32
  }
  linalg.generic {indexing_maps = [#map_in, #map_out], iterator_types = ["parallel", "reduction"]}
      ins(%x : memref<4x8xf32>) outs(%m : memref<4xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.maximumf %a, %acc : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// Tests that elementwise code keeps IEEE semantics (no flags), and that flags an op already
// has are kept.
// CHECK-LABEL: func.func @elementwise_untouched
// CHECK: arith.mulf %{{.+}}, %{{.+}} : f32
// CHECK-LABEL: func.func @keeps_flags
// CHECK: arith.addf %{{.+}}, %{{.+}} fastmath<reassoc,nnan,contract> : f32
#id = affine_map<(i) -> (i)>
func.func @elementwise_untouched(%x: memref<8xf32>, %y: memref<8xf32>) {
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]}
      ins(%x : memref<8xf32>) outs(%y : memref<8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %r = arith.mulf %a, %a : f32
    linalg.yield %r : f32
  }
  return
}
#to0 = affine_map<(i) -> ()>
func.func @keeps_flags(%x: memref<8xf32>, %s: memref<f32>) {
  linalg.generic {indexing_maps = [#id, #to0], iterator_types = ["reduction"]}
      ins(%x : memref<8xf32>) outs(%s : memref<f32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %a, %acc fastmath<nnan> : f32
    linalg.yield %r : f32
  }
  return
}
