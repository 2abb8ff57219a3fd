//! The tonic services: each RPC goes to its own file.

use crate::pb::image_service_server::ImageService;
use crate::pb::runtime_service_server::RuntimeService;
use crate::{pb, Cri};
use pb::ContainerEventType as Kind;
use std::sync::Arc;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct CriService(pub Arc<Cri>);

type Res<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl RuntimeService for CriService {
    async fn version(&self, r: Request<pb::VersionRequest>) -> Res<pb::VersionResponse> {
        crate::version::version(r.into_inner()).map(Response::new)
    }
    async fn status(&self, r: Request<pb::StatusRequest>) -> Res<pb::StatusResponse> {
        crate::status::status(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn run_pod_sandbox(
        &self,
        r: Request<pb::RunPodSandboxRequest>,
    ) -> Res<pb::RunPodSandboxResponse> {
        crate::sandbox_run::run_pod_sandbox(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn stop_pod_sandbox(
        &self,
        r: Request<pb::StopPodSandboxRequest>,
    ) -> Res<pb::StopPodSandboxResponse> {
        crate::sandbox_stop::stop_pod_sandbox(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn remove_pod_sandbox(
        &self,
        r: Request<pb::RemovePodSandboxRequest>,
    ) -> Res<pb::RemovePodSandboxResponse> {
        crate::sandbox_remove::remove_pod_sandbox(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn pod_sandbox_status(
        &self,
        r: Request<pb::PodSandboxStatusRequest>,
    ) -> Res<pb::PodSandboxStatusResponse> {
        crate::sandbox_status::pod_sandbox_status(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn list_pod_sandbox(
        &self,
        r: Request<pb::ListPodSandboxRequest>,
    ) -> Res<pb::ListPodSandboxResponse> {
        crate::sandbox_list::list_pod_sandbox(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn create_container(
        &self,
        r: Request<pb::CreateContainerRequest>,
    ) -> Res<pb::CreateContainerResponse> {
        let req = r.into_inner();
        let sid = req.pod_sandbox_id.clone();
        let resp = crate::container_create::create_container(&self.0, req).await?;
        crate::events::emit(
            &self.0,
            &sid,
            &resp.container_id,
            Kind::ContainerCreatedEvent,
        )
        .await;
        Ok(Response::new(resp))
    }
    async fn start_container(
        &self,
        r: Request<pb::StartContainerRequest>,
    ) -> Res<pb::StartContainerResponse> {
        let req = r.into_inner();
        let cid = req.container_id.clone();
        let resp = crate::container_start::start_container(&self.0, req).await?;
        if let Some(sid) = crate::events::sandbox_of(&self.0, &cid).await {
            crate::events::emit(&self.0, &sid, &cid, Kind::ContainerStartedEvent).await;
        }
        Ok(Response::new(resp))
    }
    async fn stop_container(
        &self,
        r: Request<pb::StopContainerRequest>,
    ) -> Res<pb::StopContainerResponse> {
        let req = r.into_inner();
        let cid = req.container_id.clone();
        let resp = crate::container_stop::stop_container(&self.0, req).await?;
        if let Some(sid) = crate::events::sandbox_of(&self.0, &cid).await {
            crate::events::emit(&self.0, &sid, &cid, Kind::ContainerStoppedEvent).await;
        }
        Ok(Response::new(resp))
    }
    async fn remove_container(
        &self,
        r: Request<pb::RemoveContainerRequest>,
    ) -> Res<pb::RemoveContainerResponse> {
        let req = r.into_inner();
        let cid = req.container_id.clone();
        let sid = crate::events::sandbox_of(&self.0, &cid).await;
        let resp = crate::container_remove::remove_container(&self.0, req).await?;
        if let Some(sid) = sid {
            crate::events::emit(&self.0, &sid, &cid, Kind::ContainerDeletedEvent).await;
        }
        Ok(Response::new(resp))
    }
    async fn list_containers(
        &self,
        r: Request<pb::ListContainersRequest>,
    ) -> Res<pb::ListContainersResponse> {
        crate::container_list::list_containers(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn container_status(
        &self,
        r: Request<pb::ContainerStatusRequest>,
    ) -> Res<pb::ContainerStatusResponse> {
        crate::container_status::container_status(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn update_container_resources(
        &self,
        r: Request<pb::UpdateContainerResourcesRequest>,
    ) -> Res<pb::UpdateContainerResourcesResponse> {
        crate::container_update::update_container_resources(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn reopen_container_log(
        &self,
        r: Request<pb::ReopenContainerLogRequest>,
    ) -> Res<pb::ReopenContainerLogResponse> {
        crate::container_reopen_log::reopen_container_log(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn exec_sync(&self, r: Request<pb::ExecSyncRequest>) -> Res<pb::ExecSyncResponse> {
        crate::exec_sync::exec_sync(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn exec(&self, r: Request<pb::ExecRequest>) -> Res<pb::ExecResponse> {
        crate::exec::exec(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn attach(&self, r: Request<pb::AttachRequest>) -> Res<pb::AttachResponse> {
        crate::exec::attach(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn port_forward(
        &self,
        r: Request<pb::PortForwardRequest>,
    ) -> Res<pb::PortForwardResponse> {
        crate::exec::port_forward(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn container_stats(
        &self,
        r: Request<pb::ContainerStatsRequest>,
    ) -> Res<pb::ContainerStatsResponse> {
        crate::container_stats::container_stats(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn list_container_stats(
        &self,
        r: Request<pb::ListContainerStatsRequest>,
    ) -> Res<pb::ListContainerStatsResponse> {
        crate::container_stats::list_container_stats(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn pod_sandbox_stats(
        &self,
        r: Request<pb::PodSandboxStatsRequest>,
    ) -> Res<pb::PodSandboxStatsResponse> {
        crate::sandbox_stats::pod_sandbox_stats(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn list_pod_sandbox_stats(
        &self,
        r: Request<pb::ListPodSandboxStatsRequest>,
    ) -> Res<pb::ListPodSandboxStatsResponse> {
        crate::sandbox_stats::list_pod_sandbox_stats(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn update_runtime_config(
        &self,
        _r: Request<pb::UpdateRuntimeConfigRequest>,
    ) -> Res<pb::UpdateRuntimeConfigResponse> {
        // The pod CIDR comes from peapod's own CNI configuration.
        Ok(Response::new(pb::UpdateRuntimeConfigResponse {}))
    }
    async fn get_container_events(
        &self,
        _r: Request<pb::GetEventsRequest>,
    ) -> Res<tonic::codegen::BoxStream<pb::ContainerEventResponse>> {
        Ok(Response::new(Box::pin(crate::events::stream(&self.0))))
    }
}

#[tonic::async_trait]
impl ImageService for CriService {
    async fn list_images(&self, r: Request<pb::ListImagesRequest>) -> Res<pb::ListImagesResponse> {
        crate::image_list::list_images(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn image_status(
        &self,
        r: Request<pb::ImageStatusRequest>,
    ) -> Res<pb::ImageStatusResponse> {
        crate::image_status::image_status_rpc(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn pull_image(&self, r: Request<pb::PullImageRequest>) -> Res<pb::PullImageResponse> {
        crate::image_pull::pull_image(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn remove_image(
        &self,
        r: Request<pb::RemoveImageRequest>,
    ) -> Res<pb::RemoveImageResponse> {
        crate::image_remove::remove_image(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn image_fs_info(
        &self,
        r: Request<pb::ImageFsInfoRequest>,
    ) -> Res<pb::ImageFsInfoResponse> {
        crate::image_fs_info::image_fs_info(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
}
