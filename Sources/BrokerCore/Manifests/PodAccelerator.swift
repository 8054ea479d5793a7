import Foundation

extension PodRequirements {
    /// The pod's accelerator request, read through `AcceleratorSpellings`: nil when it asks
    /// for none (or after reporting one the broker cannot place).
    func gpu(catalog: InstanceCatalog, errors: FieldErrorCollector) -> GPU? {
        var asks: [(vendor: AcceleratorVendor?, family: String?, count: DeviceCount, amount: Double, name: String, noun: String,
                    profile: String?)] = []
        for name in resources.keys.sorted() {
            guard let spelling = AcceleratorSpellings.resource(name) else { continue }
            let profile = spelling.count == .partitions ? String(name.dropFirst(spelling.name.count)) : nil
            asks.append((spelling.vendor, spelling.family, spelling.count, resources[name]!, name, spelling.noun, profile))
        }
        for claim in claims {
            asks.append((claim.vendor, claim.family, claim.count, claim.amount, claim.name, "\(claim.vendor.rawValue) devices",
                         claim.profile))
        }
        var gpu = GPU(count: 0, vendor: nil, series: [], source: asks.first?.name ?? "")
        var devices = 0, share = false, slices = 0.0
        for ask in asks {
            switch ask.count {
            case .interconnect(let link):
                gpu.interconnect = link
                continue
            case .devices:
                devices += Int(ask.amount)
            case .cores(let perDevice):
                devices += Int((ask.amount / Double(perDevice)).rounded(.up))
            case .partitions:
                // A MIG profile `<g>g.<m>gb` takes g of a device's 7 compute slices; partitions
                // of one pod share devices (the first profile is the one a pool must offer).
                gpu.partition = gpu.partition ?? ask.profile
                slices += ask.amount * Double(ask.profile.flatMap { Int($0.prefix { $0.isNumber }) } ?? 7)
            case .shares, .percent:
                share = true
            case .memoryGiBOrMiB:
                share = true
                let gib = ask.amount > DeviceCount.mebibyteFloor ? ask.amount / 1024 : ask.amount
                gpu.minMemoryGiB = max(gpu.minMemoryGiB ?? 0, gib)
            case .memoryMiBPerDevice:
                gpu.minMemoryGiB = max(gpu.minMemoryGiB ?? 0, ask.amount / 1024)
            }
            if gpu.vendor == nil { gpu.source = ask.name }
            if let vendor = ask.vendor, let other = gpu.vendor, other != vendor {
                errors.add(resourcesPath, "asks for \(gpu.source) and \(ask.name): devices of two vendors on one pod")
                return nil
            }
            gpu.vendor = ask.vendor ?? gpu.vendor
            if let family = ask.family {
                gpu.series = catalog.isEmpty
                    ? AcceleratorModels.all.filter { $0.family == family }.map(\.name)
                    : catalog.gpuSeries.filter { AcceleratorModels.model(named: $0)?.family == family }
                if gpu.series.isEmpty {
                    errors.add(resourcesPath, "asks for \(ask.name): no pool offers \(ask.noun)")
                    return nil
                }
            }
            if let vendor = ask.vendor, !catalog.offers(vendor) {
                errors.add(resourcesPath, "asks for \(ask.name): no pool offers \(ask.noun)")
                return nil
            }
        }
        // A DRA claim that names a model requires it.
        if let model = claims.lazy.compactMap(\.model).first {
            gpu.series = [catalog.gpuSeries.first { $0.uppercased() == model.uppercased() } ?? model]
        }
        guard readSelectors(into: &gpu, catalog: catalog, errors: errors) else { return nil }
        if gpu.vendor == nil && gpu.series.isEmpty && gpu.preferred.isEmpty && devices == 0 && !share
            && gpu.minMemoryGiB == nil && gpu.partition == nil
        {
            if let link = gpu.interconnect {
                errors.add(resourcesPath, "asks for a \(link) link without an accelerator: only accelerator pools offer links")
            }
            return nil
        }
        gpu.count = max(1, devices + Int((slices / 7).rounded(.up)))
        if gpu.count > AllocationRequest.maxGPUCount {
            errors.add(resourcesPath, "requests more than \(AllocationRequest.maxGPUCount) devices in total")
            return nil
        }
        return gpu
    }

    /// Node selectors: models preferred, a vendor required, instance types tried first.
    private func readSelectors(into gpu: inout GPU, catalog: InstanceCatalog, errors: FieldErrorCollector) -> Bool {
        for (spelling, values) in selectors {
            var vendor = spelling.vendor
            switch spelling.meaning {
            case .model:
                let models = values.compactMap { AcceleratorModels.model(in: $0, known: catalog.gpuSeries) }
                gpu.preferred += models.filter { !gpu.preferred.contains($0) }
                if vendor == nil, let first = models.first { vendor = AcceleratorModels.model(named: first)?.vendor }
                if vendor == nil, let value = values.first, !value.isEmpty {
                    vendor = AcceleratorVendor.allCases.first { value.lowercased().contains($0.rawValue) }
                }
            case .family:
                gpu.preferred += values.flatMap { AcceleratorModels.models(ofFamily: $0) }
                    .map { model in catalog.gpuSeries.first { $0.uppercased() == model.uppercased() } ?? model }
            case .vendor:
                vendor = vendor ?? values.lazy.compactMap { AcceleratorVendor(rawValue: $0.lowercased()) }.first
            case .memoryMiB:
                if let mib = values.compactMap(Double.init).min() { gpu.minMemoryGiB = max(gpu.minMemoryGiB ?? 0, mib / 1024) }
            case .instanceType, .instanceFamily:
                for value in values {
                    if spelling.meaning == .instanceType, catalog.poolsByType[value] != nil {
                        gpu.instanceTypes.append(value)
                    } else if let family = value.split(separator: ".").first.map(String.init),
                        let model = AcceleratorSpellings.instanceFamilies[family]
                    {
                        if !gpu.preferred.contains(model) { gpu.preferred.append(model) }
                        vendor = vendor ?? AcceleratorModels.vendor(of: model)
                    }
                }
            case .ignored:
                break
            }
            guard let vendor else { continue }
            if let other = gpu.vendor, other != vendor {
                errors.add(resourcesPath, "asks for \(gpu.source) but selects \(vendor.rawValue) nodes by \(spelling.key)")
                return false
            }
            if gpu.vendor == nil { gpu.source = spelling.key }
            gpu.vendor = vendor
            if !catalog.offers(vendor) {
                errors.add(resourcesPath, "selects nodes by \(spelling.key): no pool offers \(vendor.rawValue) accelerators")
                return false
            }
        }
        return true
    }
}
