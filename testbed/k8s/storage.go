package k8s

import (
	"context"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HostPathPVs makes n PersistentVolumes of 1Gi (ReadWriteOnce, reclaim policy Retain) on host folders in the
// cluster's folder, mode 0777 so that pods running as any uid can write, with storageClassName storageClass; and the
// StorageClass of that name (no provisioner, WaitForFirstConsumer binding) if it does not exist yet. It is the
// cluster's only storage: claims (a StatefulSet's volumeClaimTemplates) bind to these volumes. A later call adds
// volumes beside the earlier ones.
func (c *Cluster) HostPathPVs(ctx context.Context, n int, storageClass string) error {
	wffc := storagev1.VolumeBindingWaitForFirstConsumer
	retain := corev1.PersistentVolumeReclaimRetain
	sc := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: storageClass},
		Provisioner:       "kubernetes.io/no-provisioner",
		VolumeBindingMode: &wffc,
		ReclaimPolicy:     &retain,
	}
	if _, err := c.client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create storage class %s: %w", storageClass, err)
	}
	existing, err := c.client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list persistent volumes: %w", err)
	}
	next := 0
	for _, pv := range existing.Items {
		if pv.Spec.StorageClassName == storageClass {
			next++
		}
	}
	dirType := corev1.HostPathDirectory
	for i := next; i < next+n; i++ {
		name := fmt.Sprintf("%s-%d", storageClass, i)
		dir := c.path("volumes", name)
		if err := os.Mkdir(dir, 0o777); err != nil {
			return fmt.Errorf("persistent volume %s: %w", name, err)
		}
		if err := os.Chmod(dir, 0o777); err != nil { // past the umask
			return fmt.Errorf("persistent volume %s: %w", name, err)
		}
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"rotk8s/storage-class": storageClass}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: retain,
				StorageClassName:              storageClass,
				PersistentVolumeSource: corev1.PersistentVolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &dirType},
				},
			},
		}
		if _, err := c.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create persistent volume %s: %w", name, err)
		}
	}
	return nil
}
